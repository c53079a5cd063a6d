// Runs the queries of a JSON file (EDDY_CUBE_CASES: [{name, query}]) against
// Eddy's Cube REST API with the official @cubejs-client/core and prints, as
// one JSON object by case name, what the client makes of each answer:
// tablePivot() and chartPivot(), the total, or the error. Used by
// test/system/cube_client_test.go, which checks the numbers.
import { readFileSync } from 'node:fs';
import cube from '@cubejs-client/core';

const { EDDY_URL, EDDY_CUBE_TOKEN, EDDY_CUBE_CASES } = process.env;
if (!EDDY_URL || !EDDY_CUBE_TOKEN || !EDDY_CUBE_CASES) {
  console.error('EDDY_URL, EDDY_CUBE_TOKEN and EDDY_CUBE_CASES are required');
  process.exit(2);
}
const api = cube(EDDY_CUBE_TOKEN, { apiUrl: `${EDDY_URL}/cubejs-api/v1` });
const cases = JSON.parse(readFileSync(EDDY_CUBE_CASES, 'utf8'));

const out = {};
for (const c of cases) {
  try {
    if (c.kind === 'meta') {
      const meta = await api.meta();
      out[c.name] = { cubes: meta.cubes.map((x) => x.name).sort() };
      continue;
    }
    if (c.kind === 'sql') {
      const sql = await api.sql(c.query);
      out[c.name] = { sql: sql.sql(), params: sql.rawQuery().sql[1] };
      continue;
    }
    const rs = await api.load(c.query);
    out[c.name] = {
      tablePivot: rs.tablePivot(),
      chartPivot: rs.chartPivot(),
      total: rs.loadResponses[0].total ?? null,
    };
  } catch (e) {
    out[c.name] = { error: String(e.message ?? e), status: e.status ?? null };
  }
}
process.stdout.write(JSON.stringify(out));
