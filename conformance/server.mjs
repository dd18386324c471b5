// Starts `threadmig serve` on a fresh workspace and an ephemeral loopback port, for the
// conformance suite. The binary is `$THREADMIG_BIN`, else `target/debug/threadmig` under the
// repository root (resolved from this file, so the suite runs from any working directory).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const startupTimeoutMs = 60_000;

export function threadmigBin() {
  const configured = process.env.THREADMIG_BIN;
  if (configured) {
    return path.resolve(repoRoot, configured);
  }
  return path.join(repoRoot, 'target', 'debug', 'threadmig');
}

/**
 * Spawns `threadmig serve --workspace <temp dir> --port 0` and resolves once the server has
 * printed its base URL (the first stdout line). Returns `{ apiURI, stop }`; `stop()` kills the
 * server and removes the workspace.
 */
export async function startServer() {
  const workspace = mkdtempSync(path.join(tmpdir(), 'threadmig-conformance-'));
  const bin = threadmigBin();
  const child = spawn(bin, ['serve', '--workspace', workspace, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    // Kept (bounded) so a failed start says why.
    stderr = (stderr + chunk).slice(-8_000);
  });

  const exited = new Promise((resolve) => child.once('exit', resolve));

  const apiURI = await new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => {
      fail(new Error(`threadmig serve printed no base URL within ${startupTimeoutMs} ms`));
    }, startupTimeoutMs);
    function fail(err) {
      clearTimeout(timer);
      child.kill('SIGKILL');
      rmSync(workspace, { recursive: true, force: true });
      reject(new Error(`${err.message}\n(binary: ${bin})\nstderr:\n${stderr}`));
    }
    child.once('error', (err) => fail(err));
    const onEarlyExit = (code, signal) => {
      fail(new Error(`threadmig serve exited before printing its URL (code ${code}, signal ${signal})`));
    };
    child.once('exit', onEarlyExit);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', function onData(chunk) {
      stdout += chunk;
      const newline = stdout.indexOf('\n');
      if (newline < 0) {
        return;
      }
      child.stdout.off('data', onData);
      // Keep draining so a chatty server never blocks on a full pipe.
      child.stdout.resume();
      clearTimeout(timer);
      child.off('exit', onEarlyExit);
      const firstLine = stdout.slice(0, newline).trim();
      const match = /^https?:\/\/\S+$/.exec(firstLine);
      if (!match) {
        child.kill('SIGKILL');
        rmSync(workspace, { recursive: true, force: true });
        reject(new Error(`first stdout line of threadmig serve is not a base URL: ${JSON.stringify(firstLine)}`));
        return;
      }
      // The SDKs build `${apiURI}/admin/...`, so no trailing slash.
      resolve(match[0].replace(/\/+$/, ''));
    });
  });

  async function stop() {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(workspace, { recursive: true, force: true });
  }

  return { apiURI, stop, workspace };
}
