import { writeFileSync } from 'node:fs';
import { configurationDoc } from '../gateway/src/config/doc.js';

writeFileSync(new URL('../docs/configuration.md', import.meta.url), configurationDoc());
