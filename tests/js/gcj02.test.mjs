// client_pwa/js/gcj02.js against published WGS-84 → GCJ-02 vectors (the same ones the server's
// media/datum.py is tested with): github.com/googollee/eviltransform python/test.py and
// github.com/wandergis/coordtransform test/app.js.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { outOfChina, wgs84ToGcj02 } from '../../client_pwa/js/gcj02.js';

const VECTORS = [
  // wgs lat, wgs lon, gcj lat, gcj lon
  [31.1774276, 121.5272106, 31.17530398364597, 121.531541859215], // Shanghai (eviltransform)
  [22.543847, 113.912316, 22.540796131694766, 113.9171764808363], // Shenzhen (eviltransform)
  [39.911954, 116.377817, 39.91334545536069, 116.38404722455657], // Beijing (eviltransform)
  [39.915, 116.404, 39.91640428150164, 116.41024449916938], // coordtransform
];

test('WGS-84 to GCJ-02 matches published vectors to 1e-6 degrees', () => {
  for (const [wlat, wlon, glat, glon] of VECTORS) {
    const [lat, lon] = wgs84ToGcj02(wlat, wlon);
    assert.ok(Math.abs(lat - glat) < 1e-6 && Math.abs(lon - glon) < 1e-6, `${wlat},${wlon} -> ${lat},${lon}`);
  }
});

test('outside China the position is unchanged', () => {
  assert.ok(outOfChina(51.5, -0.12));
  assert.deepEqual(wgs84ToGcj02(51.5, -0.12), [51.5, -0.12]);
});
