// gifenc ships no type declarations; gif-js.ts describes the part it uses (GifencApi).
declare module 'gifenc';
