import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Readable, Writable } from 'node:stream';

/** The environment variable that marks an ffmpeg as ours, so a later gateway can find it after a hard crash. */
export const INSTANCE_ENV = 'WALLGATE_INSTANCE';

export interface FfmpegOptions {
  ffmpegPath: string;
  args: string[];
  /** Working directory: outputs name their files relative to it, so no path needs escaping in the arguments. */
  cwd?: string;
  /** Written to stdin and then closed: how secrets reach ffmpeg without entering its command line. */
  stdin?: string;
  /** Marks the process for the orphan sweep (see sweep.ts). */
  instanceId: string;
  /** Strings that must never leave this object in clear (camera passwords). */
  secrets: string[];
  /** SIGTERM, then SIGKILL after this long. */
  killGraceMs: number;
  stderrTailLines: number;
}

export interface FfmpegExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why we stopped it, when we did. */
  reason: string | null;
}

const live = new Set<FfmpegProcess>();

/**
 * The only place that spawns ffmpeg. Argument arrays, never a shell; its own process group so a
 * signal reaches anything it forks; one idempotent close (SIGTERM, then SIGKILL); stderr kept as a
 * bounded, redacted tail for error messages.
 *
 * fluent-ffmpeg is not used: it cannot start the child in its own process group or feed it stdin
 * before it runs, which is how credentials stay off the command line, and it would only build the
 * argument arrays that args.ts builds already.
 */
export class FfmpegProcess extends EventEmitter<{ line: [string]; exit: [FfmpegExit] }> {
  readonly pid: number;
  readonly stdout: Readable;
  readonly exited: Promise<FfmpegExit>;
  private readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  private readonly tail: string[] = [];
  private partial = '';
  private stopReason: string | null = null;
  private killTimer: NodeJS.Timeout | null = null;
  private done = false;

  static running(): ReadonlySet<FfmpegProcess> {
    return live;
  }

  constructor(private readonly opts: FfmpegOptions) {
    super();
    this.child = spawn(opts.ffmpegPath, opts.args, {
      detached: true,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', [INSTANCE_ENV]: opts.instanceId },
    });
    this.pid = this.child.pid ?? -1;
    this.stdout = this.child.stdout;
    live.add(this);
    this.exited = new Promise((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.done) return;
        this.done = true;
        live.delete(this);
        if (this.killTimer) clearTimeout(this.killTimer);
        this.flushPartial();
        const exit = { code, signal, reason: this.stopReason };
        this.emit('exit', exit);
        resolve(exit);
      };
      this.child.once('exit', finish);
      // A spawn failure (ffmpeg missing) emits error and no exit.
      this.child.once('error', (err) => {
        this.pushLine(`spawn failed: ${err.message}`);
        finish(null, null);
      });
    });
    this.child.stdin.on('error', () => {});
    this.child.stdout.on('error', () => {});
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk: string) => this.onStderr(chunk));
    if (opts.stdin !== undefined) this.child.stdin.end(opts.stdin);
    else this.child.stdin.end();
  }

  get running(): boolean {
    return !this.done;
  }

  /** The last stderr lines, secrets removed: what an error message may quote. */
  stderrTail(): string[] {
    return [...this.tail];
  }

  /** Stops the process: SIGTERM to its group, SIGKILL after the grace period. Safe to call any number of times. */
  close(reason: string): Promise<FfmpegExit> {
    if (!this.done && this.stopReason === null) {
      this.stopReason = reason;
      this.signal('SIGTERM');
      this.killTimer = setTimeout(() => this.signal('SIGKILL'), this.opts.killGraceMs);
      this.killTimer.unref();
    }
    return this.exited;
  }

  private signal(sig: NodeJS.Signals) {
    if (this.done || this.pid < 0) return;
    try {
      process.kill(-this.pid, sig);
    } catch {
      try {
        this.child.kill(sig);
      } catch {
        // already gone
      }
    }
  }

  private onStderr(chunk: string) {
    const text = this.partial + chunk;
    const lines = text.split(/\r?\n|\r/);
    this.partial = lines.pop() ?? '';
    // A line without an end (a flood with no newline) is cut, so the tail stays bounded.
    if (this.partial.length > 4096) {
      lines.push(this.partial.slice(0, 4096));
      this.partial = '';
    }
    for (const line of lines) if (line.trim()) this.pushLine(line);
  }

  private flushPartial() {
    if (this.partial.trim()) this.pushLine(this.partial);
    this.partial = '';
  }

  private pushLine(raw: string) {
    const line = redact(raw.length > 1000 ? raw.slice(0, 1000) + '…' : raw, this.opts.secrets);
    this.tail.push(line);
    if (this.tail.length > this.opts.stderrTailLines) this.tail.shift();
    this.emit('line', line);
  }
}

/** Removes secrets from a line of text: each secret as given and URL-encoded, and any user:password@ in a URL. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) {
    if (!s) continue;
    for (const form of new Set([s, encodeURIComponent(s)])) out = out.split(form).join('***');
  }
  return out.replace(/(\/\/[^/\s:@]*):[^@/\s]*@/g, '$1:***@');
}
