// The one visible list of golden case kinds that sdlora does not support yet. Their tests still
// run, as node:test `todo` (reported in every run, never silently skipped); remove a kind from this
// list in the change that makes its tests pass, so they count for real from then on.
import type { CaseKind } from './golden.js';

export const UNSUPPORTED: Partial<Record<CaseKind, string>> = {};

/** The node:test `todo` option for a kind: its reason while unsupported, else undefined. */
export const todoFor = (kind: CaseKind): string | undefined => UNSUPPORTED[kind];
