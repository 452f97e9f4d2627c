// One process, one synthesis: the app (dev and prod, every stack, cdk-nag packs) is built once
// by support/synth.ts and every suite below asserts on the same templates.
import './suites/nag.js';
import './suites/data.js';
import './suites/service.js';
import './suites/registry.js';
import './suites/checkpoints.js';
import './suites/restore-and-scaling.js';
import './suites/models.js';
