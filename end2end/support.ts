import { expect, Page } from '@playwright/test';
import { spawn, ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ADMIN_PASSWORD } from './playwright.config';

/** Signs in through the login form and waits for the health page. */
export async function signIn(page: Page, username = 'admin', password = ADMIN_PASSWORD, base = '') {
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/$/);
}

/** A console of a test's own (so that it can be stopped, tampered with and started again). */
export class OwnConsole {
  constructor(readonly port: number, readonly dir: string, readonly args: string[] = []) {}

  /** A console on the e2e port + `offset`, on a fresh database in a temp dir of its own. */
  static fresh(offset: number, args: string[] = []): OwnConsole {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatewarden-own-'));
    return new OwnConsole(Number(process.env.E2E_PORT ?? 3107) + offset, dir, args);
  }

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  start(): Promise<ChildProcess> {
    const bin = process.env.GATEWARDEN_BIN ?? path.resolve(__dirname, '../target/debug/gatewarden');
    const child = spawn(
      bin,
      ['--listen', `127.0.0.1:${this.port}`, '--database-url', `sqlite:${this.dir}/gw.db`, '--site-root', 'target/site',
        // Approvals off unless a spec asks for them (they are on by default).
        '--synthetic-interval-s', '0', '--require-approval=', ...this.args],
      { cwd: path.resolve(__dirname, '..'), env: { ...process.env, GATEWARDEN_ADMIN_PASSWORD: ADMIN_PASSWORD, RUST_LOG: 'warn' } },
    );
    return new Promise((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('Gatewarden is serving')) resolve(child);
      });
      child.on('exit', (code) => reject(new Error(`the console exited with ${code}`)));
    });
  }

  static stop(child: ChildProcess): Promise<void> {
    return new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.removeAllListeners('exit');
      child.on('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }
}
