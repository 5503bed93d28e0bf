/** The import rules of shared/design/ARCHITECTURE.md §2, enforced so the picture stays true. */
const M = 'gateway/src/';
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    { name: 'nothing-imports-app-or-main', severity: 'error', from: { pathNot: `^${M}main\\.ts$` }, to: { path: `^${M}(app|main)\\.ts$` } },
    {
      name: 'leaves-stay-leaves',
      comment: 'config, errors and lib are imported by everything and import no module',
      severity: 'error',
      from: { path: `^${M}(config|lib)/|^${M}errors\\.ts$` },
      to: { path: `^${M}(store|registry|auth|streams|outputs|control|vehicles|http)/` },
    },
    {
      name: 'store-is-below-the-domain',
      severity: 'error',
      from: { path: `^${M}store/` },
      to: { path: `^${M}(registry|auth|streams|outputs|control|vehicles|http)/` },
    },
    {
      name: 'registry-does-not-reach-up',
      severity: 'error',
      from: { path: `^${M}registry/` },
      to: { path: `^${M}(auth|streams|outputs|control|vehicles|http)/` },
    },
    {
      name: 'auth-does-not-reach-into-domain',
      severity: 'error',
      from: { path: `^${M}auth/` },
      to: { path: `^${M}(registry|streams|outputs|control|vehicles|http)/` },
    },
    {
      name: 'streams-reach-the-registry-only-through-the-resolver',
      comment: 'app.ts wires a SourceResolver; the engine knows nothing of who watches or how sources are stored',
      severity: 'error',
      from: { path: `^${M}streams/` },
      to: { path: `^${M}(registry|auth|outputs|control|vehicles|http)/` },
    },
    {
      name: 'outputs-use-streams-and-nothing-above',
      comment: 'outputs declare the interfaces they need (stream-access.ts); app.ts wires token checks and the engine',
      severity: 'error',
      from: { path: `^${M}outputs/` },
      to: { path: `^${M}(registry|auth|control|vehicles|http)/` },
    },
    {
      name: 'outputs-do-not-import-each-other',
      severity: 'error',
      from: { path: `^${M}outputs/([^/]+)/` },
      to: { path: `^${M}outputs/([^/]+)/`, pathNot: `^${M}outputs/$1/` },
    },
    {
      name: 'control-does-not-reach-up',
      comment: 'the control plane drives the engine and reads the registry; HTTP routes call it, never the reverse',
      severity: 'error',
      from: { path: `^${M}control/` },
      to: { path: `^${M}(http|outputs|vehicles)/` },
    },
    {
      name: 'vehicles-reach-walls-only-through-app',
      comment: 'vehicles use the registry and the permission table; the walls and the WebSocket reach them through interfaces app.ts wires',
      severity: 'error',
      from: { path: `^${M}vehicles/` },
      to: { path: `^${M}(http|outputs|control|streams)/|^${M}auth/(?!roles\\.ts$)` },
    },
    {
      name: 'vehicle-model-stands-alone',
      comment: 'the vehicle types are shared with the player and the simulator as they are',
      severity: 'error',
      from: { path: `^${M}vehicles/model\\.ts$` },
      to: { path: `^${M}` },
    },
    {
      name: 'control-model-stands-alone',
      comment: 'the wall model and applyDelta are shared with the player and scripts as they are',
      severity: 'error',
      from: { path: `^${M}control/model\\.ts$` },
      to: { path: `^${M}` },
    },
    {
      name: 'domain-modules-only-through-store-interface',
      comment: 'only app.ts picks the store implementation',
      severity: 'error',
      from: { path: `^${M}(registry|auth|http|streams|control|vehicles|outputs)/` },
      to: { path: `^${M}store/sqlite/` },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
