// exportStage: a stage to another reference, werf* labels removed, config optionally mutated.
// STUB: being written (issue 13).
import type { RepoContext } from './context.js';
import type { ExportStageOptions, ExportStageResult, StageDesc } from './types.js';

export async function exportStage(
  _ctx: RepoContext,
  _d: StageDesc,
  _o: ExportStageOptions,
): Promise<ExportStageResult> {
  throw new Error('not implemented: exportStage');
}
