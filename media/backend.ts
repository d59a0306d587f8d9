// A media backend: where clients upload and download bytes with presigned
// URLs. The same behaviour on each: an upload is kept only with the declared
// size and SHA-256, URLs expire, a changed signature is refused.
import type { Media } from '../store/types.js'

export interface UploadTarget { url: string, method: 'PUT', headers: Record<string, string> }

export interface MediaBackend {
  readonly name: 'local' | 's3'
  uploadTarget (media: Media, expiresAt: number, baseUrl: string): Promise<UploadTarget>
  downloadUrl (media: Media, expiresAt: number, baseUrl: string): Promise<string>
  /** Whether the object is stored with the declared size and SHA-256. */
  confirm (media: Media): Promise<boolean>
  delete (key: string): Promise<void>
}
