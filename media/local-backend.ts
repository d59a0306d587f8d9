// The local backend: URLs point at the API's own /media/:id endpoints,
// signed with an HMAC key; bytes live in a LocalBlobStore.
import type { Media } from '../store/types.js'
import type { MediaBackend, UploadTarget } from './backend.js'
import type { LocalBlobStore } from './local-blob.js'
import type { UrlSigner } from './signing.js'

export class LocalBackend implements MediaBackend {
  readonly name = 'local' as const
  constructor (readonly blobs: LocalBlobStore, readonly signer: UrlSigner) {}

  private url (method: 'GET' | 'PUT', media: Media, expiresAt: number, baseUrl: string): string {
    return `${baseUrl}/media/${media.id}?exp=${expiresAt}&sig=${this.signer.sign(method, media.id, expiresAt)}`
  }

  async uploadTarget (media: Media, expiresAt: number, baseUrl: string): Promise<UploadTarget> {
    return { url: this.url('PUT', media, expiresAt, baseUrl), method: 'PUT', headers: { 'content-type': media.contentType, 'content-length': String(media.size) } }
  }

  async downloadUrl (media: Media, expiresAt: number, baseUrl: string): Promise<string> { return this.url('GET', media, expiresAt, baseUrl) }
  /** The local store keeps only verified bytes, so stored means confirmed. */
  async confirm (media: Media): Promise<boolean> { return this.blobs.exists(media.id) }
  async delete (key: string): Promise<void> { await this.blobs.delete(key) }
}
