// `diffsim/parity`: comparing the engine with reference fixture folders (what `diffsim parity` runs).
export { runParity, planParity, loadIndex, fixtureFolders, HANDLERS } from './parity.js';
export { F16_WEIGHTS_TOLERANCE, maxAbsError, normalisedError, toleranceFor, type FixtureIndex, type ParityRow, type ParitySettings } from './common.js';
