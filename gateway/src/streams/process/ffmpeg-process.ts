import { execFile, spawn, type ChildProcessByStdio } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { closeSync, constants, openSync, unlinkSync } from 'node:fs';
import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
/** One read buffer per process, reused for every read of its stdout. */
const STDOUT_READ_BYTES = 64 * 1024;

/** The environment variable that marks an ffmpeg as ours, so a later gateway can find it after a hard crash. */
export const INSTANCE_ENV = 'WALLGATE_INSTANCE';

export interface FfmpegOptions {
  ffmpegPath: string;
  args: string[];
  /** Working directory: outputs name their files relative to it, so no path needs escaping in the arguments. */
  cwd?: string;
  /** Written to stdin and then closed: how secrets reach ffmpeg without entering its command line. */
  stdin?: string;
  /**
   * Keeps stdin open for writeInput(): a source that reassembles the media itself (GB/T 28181, JT/T
   * 1078) feeds ffmpeg as the media arrive. `stdin` is then not used.
   */
  streamStdin?: boolean;
  /** Marks the process for the orphan sweep (see sweep.ts). */
  instanceId: string;
  /** Strings that must never leave this object in clear (camera passwords). */
  secrets: string[];
  /** SIGTERM, then SIGKILL after this long. */
  killGraceMs: number;
  stderrTailLines: number;
  /**
   * Receives stdout as it arrives. The chunk is a view of a buffer reused for the next read: copy
   * what must outlive the call. A pipe handed to Node as a child's stdout allocates a new buffer
   * for every read, and at a hundred pulls that churn made the garbage collector the gateway's
   * largest cost; stdout is therefore a FIFO read with one fixed buffer.
   */
  onStdout?: (chunk: Buffer) => void;
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
 * fluent-ffmpeg is not used: it spawns with fixed options, so the child can neither get its own
 * process group nor a FIFO as stdout (see onStdout), and it would only build the argument arrays
 * that args.ts builds already.
 */
export class FfmpegProcess extends EventEmitter<{ line: [string]; exit: [FfmpegExit] }> {
  readonly pid: number;
  readonly exited: Promise<FfmpegExit>;
  private readonly child: ChildProcessByStdio<Writable, null, Readable>;
  private stdoutReader: Socket | null = null;
  private readonly tail: string[] = [];
  private partial = '';
  private stopReason: string | null = null;
  private killTimer: NodeJS.Timeout | null = null;
  private done = false;

  static running(): ReadonlySet<FfmpegProcess> {
    return live;
  }

  /** Spawns ffmpeg; with onStdout, its stdout is a FIFO made for it (see FfmpegOptions.onStdout). */
  static async start(opts: FfmpegOptions): Promise<FfmpegProcess> {
    if (!opts.onStdout) return new FfmpegProcess(opts, null);
    const path = join(opts.cwd ?? tmpdir(), `.stdout-${randomUUID()}.fifo`);
    await execFileAsync('mkfifo', ['-m', '600', path]);
    let readFd = -1;
    let writeFd = -1;
    try {
      // Opening the read end without blocking first lets the write end open at once.
      readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
      writeFd = openSync(path, constants.O_WRONLY);
    } finally {
      unlinkSync(path);
    }
    try {
      return new FfmpegProcess(opts, { readFd, writeFd });
    } finally {
      // The child holds its own copy of the write end; ours would keep end-of-file from ever coming.
      closeSync(writeFd);
    }
  }

  private constructor(
    private readonly opts: FfmpegOptions,
    fifo: { readFd: number; writeFd: number } | null,
  ) {
    super();
    this.child = spawn(opts.ffmpegPath, opts.args, {
      detached: true,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      stdio: ['pipe', fifo ? fifo.writeFd : 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', [INSTANCE_ENV]: opts.instanceId },
    }) as ChildProcessByStdio<Writable, null, Readable>;
    this.pid = this.child.pid ?? -1;
    if (fifo && opts.onStdout) {
      const onStdout = opts.onStdout;
      const readBuffer = Buffer.allocUnsafe(STDOUT_READ_BYTES);
      const options: SocketConstructorOpts & { onread: OnReadOpts } = {
        fd: fifo.readFd,
        readable: true,
        writable: false,
        onread: {
          buffer: readBuffer,
          callback: (n) => {
            onStdout(readBuffer.subarray(0, n));
            return true;
          },
        },
      };
      this.stdoutReader = new Socket(options);
      this.stdoutReader.on('error', () => {});
    }
    live.add(this);
    this.exited = new Promise((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.done) return;
        this.done = true;
        live.delete(this);
        if (this.killTimer) clearTimeout(this.killTimer);
        this.stdoutReader?.destroy();
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
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk: string) => this.onStderr(chunk));
    if (opts.streamStdin) return;
    if (opts.stdin !== undefined) this.child.stdin.end(opts.stdin);
    else this.child.stdin.end();
  }

  /**
   * Queues bytes for ffmpeg's stdin (streamStdin). False when they cannot go anywhere: the process
   * is gone, stopping, or its input was ended. Whether ffmpeg keeps up is `inputBuffered`.
   */
  writeInput(chunk: Buffer): boolean {
    const stdin = this.child.stdin;
    if (!this.opts.streamStdin || this.done || this.stopReason !== null || !stdin.writable) return false;
    stdin.write(chunk);
    return true;
  }

  /** Bytes written to stdin that ffmpeg has not taken yet. */
  get inputBuffered(): number {
    return this.child.stdin.writableLength;
  }

  /** Ends stdin (streamStdin): ffmpeg finishes what it has and exits. */
  endInput(): void {
    if (this.opts.streamStdin && this.child.stdin.writable) this.child.stdin.end();
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
