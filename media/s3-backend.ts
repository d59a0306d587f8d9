// The S3 backend (@aws-sdk/client-s3 and s3-request-presigner). The upload URL
// signs the content length and type, and the client must send the SHA-256 as
// x-amz-checksum-sha256, so S3 itself refuses other bytes or another size;
// completion is then confirmed with a HEAD that reads the stored checksum.
import { CreateBucketCommand, DeleteBucketLifecycleCommand, DeleteObjectCommand, GetBucketLifecycleConfigurationCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, PutBucketLifecycleConfigurationCommand, PutObjectCommand, S3Client, type LifecycleRule } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import type { Media } from '../store/types.js'
import type { MediaBackend, UploadTarget } from './backend.js'

/** The bucket rule releases before 0.2 set: objects expired by age. */
export const OLD_AGE_RULE = 'mqchat-media-retention'

export interface S3Options {
  endpoint: string
  /** The endpoint clients reach, for presigned URLs only; empty: `endpoint`. */
  publicEndpoint?: string
  region: string
  bucket: string
  forcePathStyle: boolean
  accessKeyId: string
  secretAccessKey: string
}

const base64OfHex = (hex: string): string => Buffer.from(hex, 'hex').toString('base64')

export class S3Backend implements MediaBackend {
  readonly name = 's3' as const
  #s3: S3Client
  /** Signs the URLs handed to clients (no requests are sent with it). */
  #signer: S3Client
  constructor (private readonly opts: S3Options) {
    const client = (endpoint: string): S3Client => new S3Client({
      endpoint: endpoint || undefined,
      region: opts.region,
      forcePathStyle: opts.forcePathStyle,
      credentials: opts.accessKeyId ? { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey } : undefined
    })
    this.#s3 = client(opts.endpoint)
    this.#signer = opts.publicEndpoint ? client(opts.publicEndpoint) : this.#s3
  }

  /** Creates the bucket if it does not exist. */
  async ensureBucket (): Promise<void> {
    try {
      await this.#s3.send(new HeadBucketCommand({ Bucket: this.opts.bucket }))
    } catch {
      await this.#s3.send(new CreateBucketCommand({ Bucket: this.opts.bucket }))
    }
  }

  /**
   * Media is kept for a retention period from its last use (a file sent
   * again is kept again), which only the server's lifecycle job knows; a
   * bucket rule would count from the upload and delete media still in use.
   * So the bucket has no expiry rule of ours. This removes the one older
   * releases set (`mqchat-media-retention`), leaving any other rule as it is.
   * (Uploads are single presigned PUTs: there are no multipart uploads to abort.)
   * Returns whether a rule was removed.
   */
  async removeAgeExpiry (): Promise<boolean> {
    let rules: LifecycleRule[]
    try {
      rules = (await this.#s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: this.opts.bucket }))).Rules ?? []
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchLifecycleConfiguration') return false
      throw err
    }
    const kept = rules.filter((r) => r.ID !== OLD_AGE_RULE)
    if (kept.length === rules.length) return false
    if (kept.length === 0) await this.#s3.send(new DeleteBucketLifecycleCommand({ Bucket: this.opts.bucket }))
    else await this.#s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket: this.opts.bucket, LifecycleConfiguration: { Rules: kept } }))
    return true
  }

  private seconds (expiresAt: number): number { return Math.max(1, Math.round((expiresAt - Date.now()) / 1000)) }

  async uploadTarget (media: Media, expiresAt: number): Promise<UploadTarget> {
    const checksum = base64OfHex(media.sha256)
    const url = await getSignedUrl(this.#signer, new PutObjectCommand({
      Bucket: this.opts.bucket, Key: media.id, ContentLength: media.size, ContentType: media.contentType, ChecksumSHA256: checksum
    }), {
      expiresIn: this.seconds(expiresAt),
      unhoistableHeaders: new Set(['x-amz-checksum-sha256']),
      signableHeaders: new Set(['content-length', 'content-type'])
    })
    return { url, method: 'PUT', headers: { 'content-type': media.contentType, 'content-length': String(media.size), 'x-amz-checksum-sha256': checksum } }
  }

  async downloadUrl (media: Media, expiresAt: number): Promise<string> {
    // Served as a download, never rendered as a page of the bucket's origin (the same headers as local media).
    return getSignedUrl(this.#signer, new GetObjectCommand({ Bucket: this.opts.bucket, Key: media.id, ResponseContentDisposition: 'attachment' }), { expiresIn: this.seconds(expiresAt) })
  }

  async confirm (media: Media): Promise<boolean> {
    try {
      const head = await this.#s3.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: media.id, ChecksumMode: 'ENABLED' }))
      return head.ContentLength === media.size && head.ChecksumSHA256 === base64OfHex(media.sha256)
    } catch {
      return false
    }
  }

  async exists (key: string): Promise<boolean> {
    return this.#s3.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: key })).then(() => true, () => false)
  }

  async delete (key: string): Promise<void> { await this.#s3.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: key })) }
}
