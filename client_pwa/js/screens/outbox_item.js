// One outbox item (issue 12): what was sent — the answers with their questions (labels, not
// keys), the photos as thumbnails, the state and the supervisor's comment — and, for a
// 被退回 item, the fix-and-resend button.

import * as api from '../api.js';
import { formatTime, pick, t } from '../i18n.js';
import { calcText } from '../render_form.js';
import * as store from '../store.js';
import { formatValue } from './facility.js';
import { loopDetails, loopState } from './outbox.js';
import { h, stateBadge } from './ui.js';

export async function show(app, seq, id) {
  const e = await store.outboxEntry(id);
  if (!e || e.owner !== app.session.user.id) {
    app.mount(seq, h('p.empty', t('loop_item_missing')), { title: t('outbox'), back: '/outbox', tab: 'outbox' });
    return;
  }
  const loop = await loopState((await store.outbox()).filter((x) => x.owner === app.session.user.id));
  const urls = [];
  const head = h('div.card.item-head', { id: 'item-head' },
    h('div.name', h('strong', e.name || '')),
    h('div.muted', e.type === 'facility' ? t('facility_item', { name: e.name }) : pick(e.title)),
    h('div', { style: 'margin-top:6px' }, stateBadge(e)),
    h('div.small.muted', formatTime(e.type === 'facility' ? e.createdAt : e.item.observed_at)),
    e.review && e.review.reason ? h('div.review', t('review_reason', { r: e.review.reason })) : null,
    e.item && e.item.replaces ? h('div.small.muted', { id: 'item-replaces' }, t('loop_replaces_note')) : null,
    loopDetails(app, e, loop));

  const kv = h('dl.kv.answers', { id: 'item-answers' });
  if (e.type === 'facility') {
    kv.append(h('dt', t('facility_kind')), h('dd', t(`kind_${e.item.kind}`)));
    kv.append(h('dt', t('facility_name')), h('dd', e.item.name));
    kv.append(h('dt', t('facility_position')), h('dd', `${e.item.lat}, ${e.item.lon}`));
  } else {
    const definition = (await store.formDefinition(e.item.form, e.item.version)) || (await store.latestForms())[e.item.form];
    const answers = e.item.answers || {};
    const shown = async (field, value) => {
      if (field.type === 'photo') {
        const grid = h('div.photos.item-photos');
        for (const p of Array.isArray(value) ? value : []) {
          const blob = await store.thumbOrFetch(p.sha256, api.displayBlob);
          const url = blob ? URL.createObjectURL(blob) : null;
          if (url) urls.push(url);
          grid.append(h('div.photo', { dataset: { sha256: p.sha256 } }, url ? h('img', { src: url, alt: pick(field.label) }) : h('span.meta', t('loop_photo_on_server'))));
        }
        return grid.children.length ? grid : t('no_value');
      }
      if (field.type === 'calculate') return calcText(definition, field, value);
      if (field.type === 'repeat') {
        // Each instance (第 n 项) with its own answers, photos included (issue 15).
        const items = Array.isArray(value) ? value : [];
        if (!items.length) return t('no_value');
        const box = h('div.item-instances');
        for (const [i, instance] of items.entries()) {
          const inner = h('dl.kv.instance', { dataset: { instance: String(i + 1) } });
          for (const f of field.fields || []) {
            if (f.type === 'note' || !instance || !(f.name in instance)) continue;
            inner.append(h('dt', pick(f.label)), h('dd', { dataset: { field: f.name } }, await shown(f, instance[f.name])));
          }
          box.append(h('div.small.muted', t('repeat_instance', { n: i + 1 })), inner);
        }
        return box;
      }
      return formatValue(field, value);
    };
    for (const field of definition ? definition.fields : []) {
      if (field.type === 'note' || !(field.name in answers)) continue;
      kv.append(h('dt', pick(field.label)), h('dd', { dataset: { field: field.name } }, await shown(field, answers[field.name])));
    }
    if (!definition) kv.append(h('dt', ''), h('dd', t('loop_form_missing')));
  }

  const el = h('div', head, h('h2', t('loop_sent')), h('div.card', kv));
  if (!app.mount(seq, el, { title: t('loop_item_title'), back: '/outbox', tab: 'outbox' })) {
    for (const u of urls) URL.revokeObjectURL(u);
    return;
  }
  app.onLeave(() => { for (const u of urls) URL.revokeObjectURL(u); });
}
