// The layers of docs/architecture.md, enforced (tests/architecture/layers.test.ts runs this with
// dependency-cruiser's API; `npx depcruise server nodes client` prints the same violations).
// A folder imports only folders listed above it:
//
//   server/core      ← nothing of ours
//   server/protocol  ← zod only (browser-safe: the client imports it)
//   server/engine    ← core, protocol
//   server/runtime   ← core, protocol, engine
//   server/runs      ← core, protocol, engine (the checkpoint store, shared by `rdflow run` and the server)
//   server/api       ← core, protocol, engine, runtime, runs — never nodes
//   nodes            ← core, engine, runtime
//   client           ← protocol
//
// The entry points wire everything together and may import anything: server/cli.ts and
// server/convert-cli.ts (the command line), and server/api/index.ts, where startServer assembles
// the server (node set, model runtime, LMDB store) when its caller passes none. Nothing imports
// an entry point but another entry point, tests, bench and scripts.
'use strict';

/** Our source folders; anything else (node_modules, node: builtins) is not a layer. */
const OURS = '^(server|nodes|client|bench|scripts|tests|workflows|bin)/';
const ENTRY_POINTS = '^server/(cli|convert-cli)\\.ts$|^server/api/index\\.ts$';

/** A rule forbidding `from` to import any of our files outside `allowed` (a path regex). */
function layer(name, from, allowed, comment) {
  return {
    name,
    comment,
    severity: 'error',
    from: { path: from, pathNot: ENTRY_POINTS },
    to: { path: OURS, pathNot: allowed },
  };
}

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    layer('core-imports-nothing', '^server/core/', '^server/core/', 'server/core imports nothing of ours'),
    {
      name: 'protocol-only-zod',
      comment: 'server/protocol is browser-safe: it imports only zod and itself',
      severity: 'error',
      from: { path: '^server/protocol/' },
      to: { pathNot: '^server/protocol/|^node_modules/zod/' },
    },
    layer(
      'engine-above-runtime',
      '^server/engine/',
      '^server/(core|protocol|engine)/',
      'server/engine imports only core and protocol',
    ),
    layer(
      'runtime-above-api',
      '^server/runtime/',
      '^server/(core|protocol|engine|runtime)/',
      'server/runtime imports only core, protocol and engine',
    ),
    layer(
      'runs-above-api',
      '^server/runs/',
      '^server/(core|protocol|engine|runs)/',
      'server/runs (checkpoints) imports only core, protocol and engine',
    ),
    layer(
      'api-knows-no-nodes',
      '^server/api/',
      '^server/(core|protocol|engine|runtime|runs)/|^server/api/(?!index\\.ts$)',
      'server/api imports core, protocol, engine, runtime and runs, never nodes/ or an entry point',
    ),
    layer(
      'nodes-below-api',
      '^nodes/',
      '^server/(core|engine|runtime)/|^nodes/',
      'nodes import only core, engine and runtime',
    ),
    layer(
      'client-speaks-protocol',
      '^client/',
      '^server/protocol/|^client/',
      'client imports only server/protocol',
    ),
    {
      name: 'resolvable',
      comment: 'a relative import the cruise cannot resolve is one the rules above cannot see',
      severity: 'error',
      from: { path: OURS },
      // Packages are left out: some resolve only through export conditions (tsx/esm/api) or a bundler (CSS).
      to: { couldNotResolve: true, path: '^[.]{1,2}/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
    // Type-only imports are dependencies too: a type from a layer above couples the code as much.
    tsPreCompilationDeps: true,
  },
};
