// Every node type rdflow ships, in the order the editor's menu lists them.
import type { AnyNodeDef } from '../server/engine/define.ts';
import { ddimSamplerNode } from './ddim-sampler.ts';
import { fnrReverseNode } from './fnr-reverse.ts';
import { loadLatentNode } from './load-latent.ts';
import { loadVideoModelNode } from './load-video-model.ts';
import { loopEndNode, loopStartNode } from './loop.ts';
import { noiseInitNode } from './noise-init.ts';
import { pnsNoiseNode } from './pns-noise.ts';
import { promptScheduleNode } from './prompt-schedule.ts';
import { saveLatentNode } from './save-latent.ts';
import { textEncodeNode } from './text-encode.ts';
import { intMathNode } from './utility.ts';
import { vaeDecodeNode } from './vae-decode.ts';
import { videoWriteNode } from './video-write.ts';

export const allNodes: readonly AnyNodeDef[] = [
  loadVideoModelNode,
  textEncodeNode,
  promptScheduleNode,
  noiseInitNode,
  fnrReverseNode,
  pnsNoiseNode,
  ddimSamplerNode,
  vaeDecodeNode,
  videoWriteNode,
  saveLatentNode,
  loadLatentNode,
  loopStartNode,
  loopEndNode,
  intMathNode,
];
