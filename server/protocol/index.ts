// The wire protocol (api.md) as zod schemas, their inferred types and the messages' constructors.
// Browser-safe: imports zod only, so the server, the editor and the tests share this one source.
export * from './prompt.ts';
export * from './object-info.ts';
export * from './history.ts';
export * from './messages.ts';
export * from './files.ts';
