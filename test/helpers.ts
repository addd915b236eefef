// The shared test utilities live in test/support/helpers.ts. This re-export keeps a test file
// written at test/'s top level (`import … from './helpers.js'`) compiling until it moves into its
// tier folder (unit, kernels, models, metrics, cli, browser, docs), where it imports '../support/helpers.js'.
export * from './support/helpers.js';
