import { defineConfig } from '@playwright/test';
import base from './playwright.config';

// Browser benchmarks (not part of `make test`): `make bench-browser`.
export default defineConfig({ ...base, testDir: './benches', timeout: 180_000 });
