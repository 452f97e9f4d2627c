import { buildApp } from '../lib/app.js';

// `cdk synth` (npm run synth) runs this file; it writes every environment's templates to cdk.out/.
const { app } = buildApp();
app.synth();
