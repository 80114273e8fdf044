// The demo model's small world: which colours, shapes and motions its training clips show and
// which prompt words name them. The text encoder maps each known word to its concept's unit vector;
// the UNet turns the pooled concepts into a log prior over training clips. Words not listed here
// (articles, "watermark", ...) map to zero, so they leave the prior flat.

/** RGB in [0, 1]. */
export type Rgb = readonly [number, number, number];

export const COLOURS = {
  red: [0.9, 0.12, 0.1],
  green: [0.15, 0.8, 0.2],
  blue: [0.15, 0.35, 1.0],
  yellow: [0.98, 0.85, 0.1],
  orange: [1.0, 0.5, 0.05],
  purple: [0.6, 0.2, 0.85],
  white: [0.95, 0.95, 0.95],
} as const satisfies Record<string, Rgb>;
export type ColourName = keyof typeof COLOURS;

export const SHAPES = ['ball', 'square'] as const;
export type ShapeName = (typeof SHAPES)[number];

/** Motion families: an object walks along one axis, one grid step per frame. */
export const MOTIONS = ['sideways', 'updown'] as const;
export type MotionName = (typeof MOTIONS)[number];

/** Net direction of a clip's walk (last position vs first), a separate, weaker concept. */
export const DIRECTIONS = ['leftward', 'rightward', 'upward', 'downward'] as const;
export type DirectionName = (typeof DIRECTIONS)[number];

export type Concept = ColourName | ShapeName | MotionName | DirectionName;

/** Concept order = the text embedding's leading dimensions. */
export const CONCEPTS: readonly Concept[] = [
  ...(Object.keys(COLOURS) as ColourName[]),
  ...SHAPES,
  ...MOTIONS,
  ...DIRECTIONS,
];

/** Width of the text encoder's hidden states (concepts first, zero padding after). */
export const HIDDEN_SIZE = 16;

/** Prompt words (lower case, as the CLIP pre-tokenizer splits them) → the concepts they name. */
export const WORDS: Readonly<Record<string, readonly Concept[]>> = {
  red: ['red'],
  green: ['green'],
  blue: ['blue'],
  yellow: ['yellow'],
  orange: ['orange'],
  purple: ['purple'],
  violet: ['purple'],
  white: ['white'],
  ball: ['ball'],
  balls: ['ball'],
  circle: ['ball'],
  disc: ['ball'],
  dot: ['ball'],
  sphere: ['ball'],
  square: ['square'],
  squares: ['square'],
  box: ['square'],
  block: ['square'],
  cube: ['square'],
  sideways: ['sideways'],
  sliding: ['sideways'],
  slides: ['sideways'],
  rolling: ['sideways'],
  horizontally: ['sideways'],
  left: ['sideways', 'leftward'],
  right: ['sideways', 'rightward'],
  bouncing: ['updown'],
  bounces: ['updown'],
  bounce: ['updown'],
  jumping: ['updown'],
  jumps: ['updown'],
  vertically: ['updown'],
  up: ['updown', 'upward'],
  rising: ['updown', 'upward'],
  down: ['updown', 'downward'],
  falling: ['updown', 'downward'],
};

export function conceptIndex(c: Concept): number {
  return CONCEPTS.indexOf(c);
}
