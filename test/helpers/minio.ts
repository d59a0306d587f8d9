// A real MinIO server for the S3 media tests: started on free loopback ports
// in a temporary directory, stopped by its pid. The binary comes from
// `npm test` (built with go install into ~/.cache/mqchat/bin).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, waitFor } from './server.js'

export class Minio {
  proc: ChildProcess | undefined
  port = 0
  readonly dir = mkdtempSync(join(tmpdir(), 'mqchat-minio-'))
  readonly accessKey = 'mqchat-test'
  readonly secretKey = 'mqchat-test-secret-key'

  get endpoint (): string { return `http://127.0.0.1:${this.port}` }

  async start (): Promise<this> {
    const bin = process.env.MQCHAT_TEST_MINIO ?? join(homedir(), '.cache', 'mqchat', 'bin', 'minio')
    this.port = await freePort()
    const console = await freePort()
    this.proc = spawn(bin, ['server', this.dir, '--address', `127.0.0.1:${this.port}`, '--console-address', `127.0.0.1:${console}`, '--quiet'], {
      env: { PATH: process.env.PATH ?? '', HOME: this.dir, MINIO_ROOT_USER: this.accessKey, MINIO_ROOT_PASSWORD: this.secretKey, MINIO_BROWSER: 'off' },
      stdio: 'ignore'
    })
    await waitFor('MinIO to answer', async () => {
      if (this.proc?.exitCode !== null) throw new Error(`minio exited with ${String(this.proc?.exitCode)}`)
      return fetch(`${this.endpoint}/minio/health/live`).then((r) => r.ok, () => false)
    }, 30_000)
    return this
  }

  /** The server settings for mqchat's S3 backend on this MinIO. */
  env (bucket = 'mqchat-media'): Record<string, string> {
    return {
      MQCHAT_MEDIA_BACKEND: 's3',
      MQCHAT_S3_ENDPOINT: this.endpoint,
      MQCHAT_S3_REGION: 'us-east-1',
      MQCHAT_S3_BUCKET: bucket,
      MQCHAT_S3_FORCE_PATH_STYLE: 'true',
      MQCHAT_S3_ACCESS_KEY_ID: this.accessKey,
      MQCHAT_S3_SECRET_ACCESS_KEY: this.secretKey
    }
  }

  async stop (): Promise<void> {
    const p = this.proc
    if (p && p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((resolve) => p.once('exit', resolve))
      p.kill('SIGTERM')
      const timer = setTimeout(() => p.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}
