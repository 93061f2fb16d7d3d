# ruff: noqa: E501  (the OOXML part names and content types are long, and clearer whole)
"""A streamed .xlsx: the sheet's XML is written row by row into a ZIP whose bytes are yielded as
they are made, so the first bytes leave before the last row is read and nothing grows with the
row count but the hyperlink list, which spills to a temporary file past 1 MB.

Pure standard library (zipfile writing to an unseekable sink, data descriptors after each entry).
What the workbook has, and openpyxl / Excel / WPS / LibreOffice read:

- inline strings (no shared-string table to hold in memory), numbers as numbers;
- `datetime` cells as real date-times (serial numbers with a `yyyy-mm-dd hh:mm:ss` format; aware
  values are written in their own offset's wall time, so pass them already in local time) and
  `date` cells with `yyyy-mm-dd`;
- a bold, frozen header row and column widths chosen per column;
- `Link` cells as real hyperlinks (blue, underlined). Excel allows 65,530 hyperlinks per sheet;
  past that a link becomes a HYPERLINK() formula with the URL as its cached value, still
  clickable and readable.
"""

import tempfile
import unicodedata
import zipfile
from datetime import date, datetime
from xml.sax.saxutils import escape, quoteattr

MAX_HYPERLINKS = 65_530
EPOCH = datetime(1899, 12, 30)
_FLUSH = 64 * 1024

# style ids in cellXfs below
PLAIN, HEADER, DATETIME, DATE, LINK = range(5)

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    "</Types>"
)  # fmt: skip
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)  # fmt: skip
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>'
    "</Relationships>"
)  # fmt: skip
STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd"/></numFmts>'
    '<fonts count="3"><font><sz val="11"/><name val="等线"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="等线"/><family val="2"/></font>'
    '<font><u/><sz val="11"/><color rgb="FF0563C1"/><name val="等线"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="5"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="2" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
NS = (
    'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
)
HYPERLINK_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink"


class Link(tuple):
    """URLs in one cell: the cell links to the first and shows them all, one a line."""

    def __str__(self) -> str:
        return "\n".join(self)


def column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def text_width(text: str) -> int:
    """Width in Excel character units: CJK and full-width characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in str(text))


def _serial(value) -> float:
    if isinstance(value, datetime):
        return (value.replace(tzinfo=None) - EPOCH).total_seconds() / 86400
    return float((value - EPOCH.date()).days)


def _workbook(title: str, notes_title: str | None = None) -> str:
    notes = f'<sheet name={quoteattr(notes_title)} sheetId="2" r:id="rId3"/>' if notes_title else ""
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f"<workbook {NS}><bookViews><workbookView/></bookViews>"
        f'<sheets><sheet name={quoteattr(title)} sheetId="1" r:id="rId1"/>{notes}</sheets>'
        "</workbook>"
    )


#: A second sheet of notes (说明: the export holds personal data; issue 13): its parts.
_SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_SHEET_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
NOTES_CONTENT_TYPES = CONTENT_TYPES.replace(
    "</Types>",
    f'<Override PartName="/xl/worksheets/sheet2.xml" ContentType="{_SHEET_TYPE}"/></Types>',
)
NOTES_WORKBOOK_RELS = WORKBOOK_RELS.replace(
    "</Relationships>",
    f'<Relationship Id="rId3" Type="{_SHEET_REL}" Target="worksheets/sheet2.xml"/></Relationships>',
)


def _notes_sheet(lines: list[str]) -> str:
    rows = "".join(
        f'<row r="{n}">{_text(f"A{n}", line, HEADER if n == 1 else PLAIN)}</row>'
        for n, line in enumerate(lines, start=1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet {NS}><cols><col min="1" max="1" width="100" customWidth="1"/></cols>'
        f"<sheetData>{rows}</sheetData></worksheet>"
    )


def _sheet_head(widths: list[float]) -> str:
    cols = "".join(
        f'<col min="{i}" max="{i}" width="{w:g}" customWidth="1"/>'
        for i, w in enumerate(widths, start=1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet {NS}><sheetViews><sheetView workbookViewId="0">'
        '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
        '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
        '<sheetFormatPr defaultRowHeight="15"/>'
        + (f"<cols>{cols}</cols>" if cols else "")
        + "<sheetData>"
    )


def _text(ref: str, value: str, style: int = PLAIN) -> str:
    s = f' s="{style}"' if style else ""
    return f'<c r="{ref}"{s} t="inlineStr"><is><t xml:space="preserve">{escape(value)}</t></is></c>'


class _Sink:
    """An unseekable file the ZIP writes into; the bytes are taken as they come."""

    def __init__(self):
        self._chunks = []
        self.size = 0

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self):
        pass

    def tell(self):  # zipfile asks, and copes with an unseekable file when this fails
        raise OSError("unseekable")

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def xlsx_stream(
    rows, *, title: str, widths: list[float] | None = None, compresslevel: int = 1,
    max_links: int = MAX_HYPERLINKS, notes: list[str] | None = None,
    notes_title: str = "说明",
):  # fmt: skip
    """Yield the bytes of an .xlsx of `rows` (an iterable: the header row, then data rows).

    `notes`: lines of a second sheet, `notes_title` (what the export holds, e.g. personal data).

    `widths` are the column widths (Excel character units); without them each column is as
    wide as its header. Compression level 1: a sheet of text deflates almost as well at 1 as at
    6 and four times faster, and the time is the user's wait.
    """
    sink = _Sink()
    links = tempfile.SpooledTemporaryFile(max_size=1 << 20, mode="w+", encoding="utf-8")
    with (
        links,
        zipfile.ZipFile(
            sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel
        ) as archive,
    ):
        for name, body in (
            ("[Content_Types].xml", NOTES_CONTENT_TYPES if notes else CONTENT_TYPES),
            ("_rels/.rels", ROOT_RELS),
            ("xl/workbook.xml", _workbook(title[:31] or "Sheet1", notes_title if notes else None)),
            ("xl/_rels/workbook.xml.rels", NOTES_WORKBOOK_RELS if notes else WORKBOOK_RELS),
            ("xl/styles.xml", STYLES),
            *([("xl/worksheets/sheet2.xml", _notes_sheet(notes))] if notes else []),
        ):
            archive.writestr(name, body)
        yield sink.take()
        rows = iter(rows)
        header = [str(h) for h in next(rows, [])]
        if widths is None:
            widths = [min(60, text_width(h) + 4) for h in header]
        letters = [column_letter(i) for i in range(max(len(header), len(widths)))]
        linked = 0
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            parts = [_sheet_head(widths), '<row r="1">']
            parts += [_text(f"{letters[i]}1", h, HEADER) for i, h in enumerate(header)]
            parts.append("</row>")
            size = 0
            for number, row in enumerate(rows, start=2):
                parts.append(f'<row r="{number}">')
                for i, value in enumerate(row):
                    if value is None or value == "":
                        continue
                    if i >= len(letters):
                        letters.append(column_letter(i))
                    ref = f"{letters[i]}{number}"
                    if isinstance(value, Link):
                        if not value:
                            continue
                        if linked < max_links:
                            linked += 1
                            links.write(f"{ref}\t{value[0]}\n")
                            parts.append(_text(ref, str(value), LINK))
                        else:
                            formula = 'HYPERLINK("' + value[0].replace('"', '""') + '")'
                            parts.append(
                                f'<c r="{ref}" s="{LINK}" t="str"><f>{escape(formula)}</f>'
                                f"<v>{escape(str(value))}</v></c>"
                            )
                    elif isinstance(value, bool):
                        parts.append(f'<c r="{ref}" t="b"><v>{int(value)}</v></c>')
                    elif isinstance(value, (int, float)):
                        parts.append(f'<c r="{ref}"><v>{value!r}</v></c>')
                    elif isinstance(value, datetime):
                        parts.append(f'<c r="{ref}" s="{DATETIME}"><v>{_serial(value)!r}</v></c>')
                    elif isinstance(value, date):
                        parts.append(f'<c r="{ref}" s="{DATE}"><v>{_serial(value)!r}</v></c>')
                    else:
                        parts.append(_text(ref, str(value)))
                parts.append("</row>")
                size += 1
                if size >= 200:
                    sheet.write("".join(parts).encode("utf-8"))
                    parts.clear()
                    size = 0
                    if sink.size:
                        sink.size = 0
                        yield sink.take()
            parts.append("</sheetData>")
            if linked:
                parts.append("<hyperlinks>")
                links.seek(0)
                for n, line in enumerate(links, start=1):
                    ref = line.split("\t", 1)[0]
                    parts.append(f'<hyperlink ref="{ref}" r:id="rId{n}"/>')
                    if n % 2000 == 0:
                        sheet.write("".join(parts).encode("utf-8"))
                        parts.clear()
                parts.append("</hyperlinks>")
            parts.append("</worksheet>")
            sheet.write("".join(parts).encode("utf-8"))
        yield sink.take()
        if linked:
            with archive.open("xl/worksheets/_rels/sheet1.xml.rels", "w") as rels:
                rels.write(
                    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
                    b'relationships">'
                )
                links.seek(0)
                for n, line in enumerate(links, start=1):
                    url = line.rstrip("\n").split("\t", 1)[1]
                    rels.write(
                        f'<Relationship Id="rId{n}" Type="{HYPERLINK_REL}" '
                        f'Target={quoteattr(url)} TargetMode="External"/>'.encode()
                    )
                    if sink.size > _FLUSH:
                        sink.size = 0
                        yield sink.take()
                rels.write(b"</Relationships>")
    yield sink.take()
