// The node search box (double-click the canvas): every word typed must appear in a node type's
// name, display name, category or description, so "conditioning", "video write" or "prompt
// schedule scene" all find their nodes. Pure, so it is tested without a browser.
import type { ObjectInfo } from './types.ts';

/** Node type names matching `query`, best first: name matches, then title, category, description. */
export function searchNodeTypes(info: ObjectInfo, query: string): string[] {
  const words = query
    .toLowerCase()
    .split(/[\s/_-]+/)
    .filter((w) => w !== '');
  const scored: { name: string; score: number }[] = [];
  for (const [name, node] of Object.entries(info)) {
    const fields = [
      name.toLowerCase(),
      (node.display_name ?? '').toLowerCase(),
      (node.category ?? '').toLowerCase(),
      (node.description ?? '').toLowerCase(),
    ];
    let score = 0;
    let all = true;
    for (const word of words) {
      // Earlier fields weigh more: a word in the type's name beats one in its description.
      const field = fields.findIndex((f) => f.includes(word));
      if (field < 0) {
        all = false;
        break;
      }
      score += 4 - field;
    }
    if (all) scored.push({ name, score });
  }
  return scored.sort((a, b) => b.score - a.score || a.name.localeCompare(b.name)).map((s) => s.name);
}
