// client_pwa/js/form_logic.js: the built-in forms on the phone, and (through tests/test_js.py)
// the same validation result as forms/compiler.py for every generated answer set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';

import { fieldStates, validate } from '../../client_pwa/js/form_logic.js';

const DIR = new URL('../../forms/definitions/', import.meta.url);
const FORMS = Object.fromEntries(readdirSync(DIR).map((file) => {
  const definition = JSON.parse(readFileSync(new URL(file, DIR), 'utf8'));
  return [definition.id, definition];
}));
const TODAY = '2026-11-20';
const photo = (c) => ({ sha256: c.repeat(64), captured_at: '2026-11-20T10:31:05+08:00', position: { lat: 24.33, lon: 109.41, accuracy: 12 } });
const CHECKLIST = ['household_rubbish', 'waterways', 'farm_waste', 'no_clutter', 'no_posters', 'no_illegal_building',
  'no_sewage', 'livestock_penned', 'no_black_water', 'main_street', 'doorstep_duties'];
const TOILET = {
  toilet_type: 'household', sanitary: true, harmless: true, construction: 'septic3', in_use: true, hazards: [],
  usage_notice: true, phones_posted: true, manure_emptied: true, photo_outside: [photo('a')], photo_inside: [photo('b')],
};

test('a complete household toilet inspection is valid', () => {
  const v = validate(FORMS.toilet, TOILET, { today: TODAY });
  assert.deepEqual(v.errors, {});
  assert.deepEqual(v.dropped, []);
  assert.deepEqual(v.answers.hazards, []);
  assert.deepEqual(v.photos.map((p) => p.field), ['photo_outside', 'photo_inside']);
  assert.deepEqual(v.answers.photo_hazard, []); // a relevant photo field with no answer is stored as []
});

test('relevance hides, drops and never requires', () => {
  const states = fieldStates(FORMS.toilet, { ...TOILET, sanitary: false }, { today: TODAY });
  assert.deepEqual(states.harmless, { visible: false, required: false, value: null });
  assert.equal(states.open_to_public.visible, false);
  assert.deepEqual(states.sanitary, { visible: true, required: true, value: false });
  assert.deepEqual(states.recheck_note, { visible: true, required: false, value: null });
  const v = validate(FORMS.toilet, { ...TOILET, sanitary: false }, { today: TODAY });
  assert.deepEqual(v.dropped, ['harmless']);
  assert.equal('harmless' in v.answers, false);
});

test('required-if follows other answers', () => {
  const withHazard = { ...TOILET, hazards: ['leaking'] };
  assert.equal(fieldStates(FORMS.toilet, TOILET, { today: TODAY }).photo_hazard.required, false);
  assert.equal(fieldStates(FORMS.toilet, withHazard, { today: TODAY }).photo_hazard.required, true);
  assert.deepEqual(validate(FORMS.toilet, withHazard, { today: TODAY }).errors, {
    photo_hazard: [{ code: 'required', message: { zh: '请拍照，至少 1 张', en: 'Take at least 1 photo(s)' } }],
  });
});

test('plain Chinese messages for each kind of mistake', () => {
  const v = validate(FORMS.toilet, {
    ...TOILET, construction: 'palace', in_use: 'yes', usage_notice: undefined, photo_inside: [photo('a'), photo('a')],
    photo_outside: [1, 2, 3, 4, 5, 6].map((n) => photo(String(n))), observed_on: TODAY, colour: 'red',
  }, { today: TODAY });
  const zh = Object.fromEntries(Object.entries(v.errors).map(([k, errs]) => [k, errs.map((e) => `${e.code}:${e.message.zh}`)]));
  assert.deepEqual(zh, {
    construction: ['choice:不是可选的选项，请重新选择'],
    in_use: ['type:请选择“是”或“否”'],
    usage_notice: ['required:必须选择'],
    photo_inside: ['duplicate:同一张照片重复上传了'],
    photo_outside: ['count:照片太多，最多 5 张'],
    observed_on: ['read_only:观察日期由系统填写，不能上传'],
    colour: ['unknown_field:表单里没有这一项'],
  });
  assert.deepEqual(validate(FORMS.toilet, [], { today: TODAY }).errors._form[0].code, 'type');
});

test('constraints use today() as the observation date', () => {
  const task = { task_kind: 'party_day', status: 'done', completed_on: '2026-11-21', party_topic: '学习', party_attendance: 3, evidence_photos: [photo('a')] };
  const v = validate(FORMS.monthly_task, task, { today: TODAY });
  assert.deepEqual(Object.keys(v.errors), ['completed_on']);
  assert.equal(v.errors.completed_on[0].code, 'constraint');
  assert.deepEqual(validate(FORMS.monthly_task, task, { today: '2026-11-21' }).errors, {});
});

test('tidiness score, grade and failed items are calculated', () => {
  const answers = Object.fromEntries(CHECKLIST.map((item) => [item, 'pass']));
  Object.assign(answers, { zone_type: 'village', waterways: 'fail', no_posters: 'fail', main_street: 'na',
    waterways_photo: [photo('a')], score: 1, grade: 'x' });
  const v = validate(FORMS.tidiness, answers, { today: TODAY });
  assert.deepEqual(v.errors, { no_posters_photo: [{ code: 'required', message: { zh: '请拍照，至少 1 张', en: 'Take at least 1 photo(s)' } }] });
  assert.equal(v.answers.score, 80);
  assert.equal(v.answers.grade, '良');
  assert.deepEqual(v.answers.failed_items, ['waterways', 'no_posters']);
  const states = fieldStates(FORMS.tidiness, answers, { today: TODAY });
  assert.equal(states.score.value, 80);
  assert.equal(states.no_posters_photo.visible, true);
  const none = fieldStates(FORMS.tidiness, Object.fromEntries(CHECKLIST.map((i) => [i, 'na'])), { today: TODAY });
  assert.equal(none.score.value, null);
  assert.deepEqual(none.failed_items.value, []);
});

test('fieldStates tolerates a half-filled draft', () => {
  const states = fieldStates(FORMS.fire, { extinguisher_count: 'two' }, { today: TODAY });
  assert.equal(states.extinguisher_count.value, null);
  assert.equal(states.next_expiry.visible, false);
  assert.deepEqual(Object.keys(states), FORMS.fire.fields.map((f) => f.name));
  assert.ok(fieldStates(FORMS.fire, null, { today: TODAY }).fire_type.required);
});

test('datetimes: the canonical ISO forms only (stricter than Python 3.11 fromisoformat)', () => {
  const form = { id: 'dt', fields: [{ name: 'when', type: 'datetime', label: { zh: '时', en: 'When' } }] };
  const codes = (when) => (validate(form, { when }, { today: TODAY }).errors.when || []).map((e) => e.code);
  for (const ok of ['2026-11-20T10:31:05+08:00', '2026-11-20T02:31:05.123Z', '2026-11-20T10:31+08:00', '2024-02-29T23:59:59.5-03:30']) {
    assert.deepEqual(codes(ok), [], ok);
  }
  // refused by both twins
  for (const bad of ['2026-11-20T10:31:05', '2026-11-20 10:31:05+08:00', '2026-02-29T10:00:00+08:00', '2026-11-20T24:00:00+08:00']) {
    assert.deepEqual(codes(bad), ['type'], bad);
  }
  // accepted by the server, never made by the phone: refused here
  for (const exotic of ['2026-11-20T103105+0800', '2026-11-20T10:31:05+08', '2026-11-20T10:31:05,5+08:00',
    '2026-W47-5T10:31:05+08:00', '2026-11-20T10:31:05 +08:00', '2026-11-20T10+08:00']) {
    assert.deepEqual(codes(exotic), ['type'], exotic);
  }
});

// ---------------------------------------------------------------- repeats, choice_filter, required_message

const t = (text) => ({ zh: text, en: text });
const BLOCK = {
  id: 'toilet_block',
  version: 1,
  target: 'toilet',
  title: t('公厕分间检查'),
  fields: [
    { name: 'county', type: 'select_one', label: t('县'), choices: [{ value: 'east', label: t('东') }, { value: 'west', label: t('西') }] },
    {
      name: 'town', type: 'select_one', label: t('镇'), choice_filter: 'county = ${county}',
      required: true, required_message: { zh: '请选镇', en: 'Pick a town' },
      choices: [['e1', 'east'], ['e2', 'east'], ['w1', 'west']].map(([value, county]) => ({ value, label: t(value), properties: { county } })),
    },
    { name: 'room_total', type: 'integer', label: t('间数') },
    {
      name: 'rooms', type: 'repeat', label: t('厕所间'), repeat_count: '${room_total}', required: true,
      fields: [
        { name: 'room_ok', type: 'yes_no', label: t('能用'), required: true },
        { name: 'why', type: 'text', label: t('原因'), relevant: 'not(${room_ok})', required: 'position(..) > 1' },
        { name: 'room_photo', type: 'photo', label: t('照片'), relevant: '${room_ok}' },
        {
          name: 'kind', type: 'select_one', label: t('种'), choice_filter: "position(..) = 1 or level = 'any'",
          choices: [{ value: 'main', label: t('主'), properties: { level: 'first' } }, { value: 'side', label: t('侧'), properties: { level: 'any' } }],
        },
        { name: 'room_no', type: 'calculate', label: t('号'), calculation: "concat(position(..), '/', count(${rooms}))" },
      ],
    },
    { name: 'broken', type: 'calculate', label: t('坏'), calculation: 'count(${rooms}) - count-non-empty(${room_photo})' },
  ],
  updates: { in_use: 'count(${rooms}) > ${broken}' },
};
const BLOCK_ANSWERS = {
  county: 'east', town: 'e1', room_total: 2,
  rooms: [{ room_ok: true, room_photo: [photo('a')], kind: 'main' }, { room_ok: false, why: '堵了', kind: 'side' }],
};

test('fieldStates of a repeat: count, instances with their own relevance, required and choices', () => {
  const states = fieldStates(BLOCK, { ...BLOCK_ANSWERS, room_total: 3 }, { today: TODAY });
  assert.equal(states.rooms.visible, true);
  assert.equal(states.rooms.required, true);
  assert.equal(states.rooms.count, 3); // the phone keeps three instances
  assert.equal(states.rooms.instances.length, 2);
  const [first, second] = states.rooms.instances;
  assert.deepEqual(Object.keys(first), ['room_ok', 'why', 'room_photo', 'kind', 'room_no']);
  assert.deepEqual(first.why, { visible: false, required: false, value: null });
  assert.deepEqual(second.why, { visible: true, required: true, value: '堵了' });
  assert.deepEqual(first.kind.choices, ['main', 'side']);
  assert.deepEqual(second.kind.choices, ['side']);
  assert.equal(first.room_no.value, '1/2');
  assert.deepEqual(states.rooms.value.map((r) => r.room_no), ['1/2', '2/2']);
  assert.equal(states.broken.value, 1);
  assert.deepEqual(states.town.choices, ['e1', 'e2']);
  assert.deepEqual(fieldStates(BLOCK, { county: 'west' }, { today: TODAY }).town.choices, ['w1']);
  const noCount = fieldStates(BLOCK, { county: 'east' }, { today: TODAY }).rooms;
  assert.equal(noCount.count, null);
  assert.deepEqual(noCount.instances, []);
});

test('validate keys errors, dropped answers and photos by instance', () => {
  assert.deepEqual(validate(BLOCK, BLOCK_ANSWERS, { today: TODAY }).errors, {});
  const v = validate(BLOCK, {
    ...BLOCK_ANSWERS,
    town: 'w1',
    rooms: [{ room_ok: true, why: 'hidden', room_photo: [photo('a')] }, { room_ok: false, kind: 'main' }],
  }, { today: TODAY });
  const got = Object.fromEntries(Object.entries(v.errors).map(([k, errs]) => [k, errs.map((e) => e.code)]));
  assert.deepEqual(got, { town: ['choice'], 'rooms[2].why': ['required'], 'rooms[2].kind': ['choice'] });
  assert.deepEqual(v.dropped, ['rooms[1].why']);
  assert.deepEqual(v.photos.map((p) => p.field), ['rooms[1].room_photo']);
  assert.equal('why' in v.answers.rooms[0], false);
  assert.deepEqual(validate(BLOCK, { county: 'east' }, { today: TODAY }).errors.town,
    [{ code: 'required', message: { zh: '请选镇', en: 'Pick a town' } }]);
  const count = validate(BLOCK, { ...BLOCK_ANSWERS, room_total: 3 }, { today: TODAY }).errors.rooms;
  assert.deepEqual(count.map((e) => e.code), ['repeat_count']);
});

const fixture = process.env.VILLAGECHECK_JS_FIXTURES;
test('agrees with forms/compiler.py on every generated answer set', { skip: !fixture && 'run through tests/test_js.py' }, () => {
  const { definitions, cases } = JSON.parse(readFileSync(`${fixture}/form_cases.json`, 'utf8'));
  const failures = [];
  for (const c of cases) {
    const got = validate(definitions[c.form], c.answers, { today: c.today, now: c.now });
    try {
      assert.deepStrictEqual(got, c.expected);
    } catch {
      failures.push({ form: c.form, answers: c.answers, expected: c.expected, got });
    }
  }
  assert.deepEqual(failures.slice(0, 3), [], `${failures.length} of ${cases.length} differ`);
  assert.ok(cases.length > 5000);
});

test("a new draft's answers: static defaults, min_count instances, no date default of today()", async () => {
  const { initialAnswers, newInstance } = await import('../../client_pwa/js/form_logic.js');
  const definition = {
    fields: [
      { name: 'd', type: 'date', default: 'today()' },
      { name: 'x', type: 'text', default: 'a' },
      { name: 'r', type: 'repeat', min_count: 2, fields: [{ name: 'y', type: 'integer', default: 3 }, { name: 'dd', type: 'date', default: 'today()' }] },
      { name: 's', type: 'repeat', fields: [{ name: 'z', type: 'text' }] },
    ],
  };
  assert.deepEqual(initialAnswers(definition), { x: 'a', r: [{ y: 3 }, { y: 3 }] });
  assert.deepEqual(newInstance(definition.fields[2]), { y: 3 });
  assert.deepEqual(initialAnswers({ fields: [{ name: 'r', type: 'repeat', min_count: 500, fields: [] }] }).r.length, 100);
});
