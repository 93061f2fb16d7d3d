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
- any number of data sheets, written one after another (each sheet's rows are read only when
  the sheet before it is done, so each can stream from its own query), then a notes sheet;
- a bold, frozen header row and column widths chosen per column;
- `Link` cells as real hyperlinks (blue, underlined). Excel allows 65,530 hyperlinks per sheet;
  past that a link becomes a HYPERLINK() formula with the URL as its cached value, still
  clickable and readable.
"""

import re
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


def _workbook(titles: list[str]) -> str:
    sheets = "".join(
        f'<sheet name={quoteattr(t)} sheetId="{n}" r:id="rId{n + 1}"/>'
        for n, t in enumerate(titles, start=1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f"<workbook {NS}><bookViews><workbookView/></bookViews>"
        f"<sheets>{sheets}</sheets></workbook>"
    )


_SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_SHEET_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"


def _content_types(count: int) -> str:
    """Content types for `count` worksheets (sheet1.xml is in CONTENT_TYPES already)."""
    more = "".join(
        f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{_SHEET_TYPE}"/>'
        for n in range(2, count + 1)
    )
    return CONTENT_TYPES.replace("</Types>", more + "</Types>")


def _workbook_rels(count: int) -> str:
    """Styles are rId1; worksheet n is rId(n + 1)."""
    rels = "".join(
        f'<Relationship Id="rId{n + 1}" Type="{_SHEET_REL}" Target="worksheets/sheet{n}.xml"/>'
        for n in range(1, count + 1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        f'relationships/styles" Target="styles.xml"/>{rels}</Relationships>'
    )


def sheet_titles(titles: list[str]) -> list[str]:
    """Valid, distinct sheet names: no []:*?/\\, at most 31 characters, never blank."""
    out: list[str] = []
    for n, title in enumerate(titles, start=1):
        base = re.sub(r"[\[\]:*?/\\]", "", str(title or "")).strip("' ")[:31] or f"Sheet{n}"
        name, k = base, 2
        while name.lower() in (t.lower() for t in out):
            suffix = f"（{k}）"
            name, k = base[: 31 - len(suffix)] + suffix, k + 1
        out.append(name)
    return out


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
    notes_title: str = "说明", sheets=(),
):  # fmt: skip
    """Yield the bytes of an .xlsx of `rows` (an iterable: the header row, then data rows).

    `sheets`: more data sheets after the first, each `(title, rows, widths or None)`; a sheet's
    rows are read only once the sheet before it is written, so each may stream from its own
    query, and its widths may be a list those rows fill in when their header is made. `notes`: lines of a last sheet, `notes_title` (what the export holds, e.g. personal
    data). Sheet names are made valid and distinct (sheet_titles).

    `widths` are the column widths (Excel character units); without them each column is as
    wide as its header. Compression level 1: a sheet of text deflates almost as well at 1 as at
    6 and four times faster, and the time is the user's wait.
    """
    data = [(title, rows, widths), *sheets]
    titles = sheet_titles([t for t, _, _ in data] + ([notes_title] if notes else []))
    sink = _Sink()
    with zipfile.ZipFile(
        sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel
    ) as archive:
        for name, body in (
            ("[Content_Types].xml", _content_types(len(titles))),
            ("_rels/.rels", ROOT_RELS),
            ("xl/workbook.xml", _workbook(titles)),
            ("xl/_rels/workbook.xml.rels", _workbook_rels(len(titles))),
            ("xl/styles.xml", STYLES),
            *([(f"xl/worksheets/sheet{len(titles)}.xml", _notes_sheet(notes))] if notes else []),
        ):
            archive.writestr(name, body)
        yield sink.take()
        for number, (_, sheet_rows, sheet_widths) in enumerate(data, start=1):
            yield from _sheet(archive, sink, number, sheet_rows, sheet_widths, max_links)
    yield sink.take()


def _sheet(archive, sink, sheet_number: int, rows, widths, max_links: int):
    """Write worksheet `sheet_number` (and its hyperlinks' part), yielding bytes as they come."""
    links = tempfile.SpooledTemporaryFile(max_size=1 << 20, mode="w+", encoding="utf-8")
    with links:
        rows = iter(rows)
        header = [str(h) for h in next(rows, [])]
        if not widths:  # none given, or a list its rows were to fill in with their header
            widths = [min(60, text_width(h) + 4) for h in header]
        letters = [column_letter(i) for i in range(max(len(header), len(widths)))]
        linked = 0
        with archive.open(f"xl/worksheets/sheet{sheet_number}.xml", "w") as sheet:
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
            with archive.open(f"xl/worksheets/_rels/sheet{sheet_number}.xml.rels", "w") as rels:
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
