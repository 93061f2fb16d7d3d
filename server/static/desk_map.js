// The desk's map (issue 12): a village's facilities as coloured points on the admin's tiles (or
// a plain background with a scale bar), drawn by the app's own map module; on a submission's
// page centred on its facility (the highlighted point). The page puts the settings and points in
// the div's data-map attribute (server/maps.py desk_map).
import { createMap, ensureCss } from '/app/js/map_core.js';

const KINDS = { toilet: '厕所', rubbish: '垃圾收运点', fire: '消防点', zone: '清洁区域' };
const STATES = { good: '正常', bad: '有问题', unknown: '未检查', retired: '已停用' };

await ensureCss();
for (const el of document.querySelectorAll('.desk-map[data-map]')) {
  const { config, points } = JSON.parse(el.dataset.map);
  createMap(el, { config, points, labels: { kinds: KINDS, states: STATES, navigate: '导航到这里' } });
  el.dataset.ready = '1';
}
