//! mqchat's end-to-end encryption primitives for the CLI, from vodozemac.
//!
//! Olm (X3DH-style session set-up and a Double Ratchet) for pairwise
//! messages, Megolm for group sender keys. Every secret crosses to
//! JavaScript only as an encrypted pickle (AES-256 under a 32-byte key the
//! CLI keeps in its profile directory).
use base64::{engine::general_purpose::STANDARD_NO_PAD, Engine};
use vodozemac::megolm::{
    GroupSession, GroupSessionPickle, InboundGroupSession, InboundGroupSessionPickle, MegolmMessage,
    SessionConfig as MegolmConfig, SessionKey,
};
use vodozemac::olm::{
    Account as OlmAccount, AccountPickle, OlmMessage, PreKeyMessage, Session as OlmSession, SessionConfig,
    SessionPickle,
};
use vodozemac::{Curve25519PublicKey, Ed25519PublicKey, Ed25519Signature};
use wasm_bindgen::prelude::*;

fn fail<E: std::fmt::Display>(e: E) -> JsError {
    JsError::new(&e.to_string())
}

fn pickle_key(key: &[u8]) -> Result<[u8; 32], JsError> {
    key.try_into().map_err(|_| JsError::new("a pickle key is 32 bytes"))
}

fn b64(bytes: &[u8]) -> String {
    STANDARD_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Result<Vec<u8>, JsError> {
    STANDARD_NO_PAD.decode(text.trim_end_matches('=')).map_err(fail)
}

/// A device's long-term Olm identity and its one-time and fallback prekeys.
#[wasm_bindgen]
pub struct Account {
    inner: OlmAccount,
}

#[wasm_bindgen]
impl Account {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Account {
        Account { inner: OlmAccount::new() }
    }

    pub fn from_pickle(pickle: &str, key: &[u8]) -> Result<Account, JsError> {
        let p = AccountPickle::from_encrypted(pickle, &pickle_key(key)?).map_err(fail)?;
        Ok(Account { inner: OlmAccount::from_pickle(p) })
    }

    pub fn pickle(&self, key: &[u8]) -> Result<String, JsError> {
        Ok(self.inner.pickle().encrypt(&pickle_key(key)?))
    }

    /// The Curve25519 identity key (base64): what sessions are made with.
    #[wasm_bindgen(getter)]
    pub fn curve25519_key(&self) -> String {
        self.inner.curve25519_key().to_base64()
    }

    /// The Ed25519 signing key (base64): it signs the prekeys and the identity key.
    #[wasm_bindgen(getter)]
    pub fn ed25519_key(&self) -> String {
        self.inner.ed25519_key().to_base64()
    }

    /// An Ed25519 signature (base64) of `message`.
    pub fn sign(&self, message: &str) -> String {
        self.inner.sign(message).to_base64()
    }

    pub fn generate_one_time_keys(&mut self, count: usize) {
        self.inner.generate_one_time_keys(count);
    }

    /// The unpublished one-time keys, as JSON {keyId: base64 public key}.
    pub fn one_time_keys(&self) -> String {
        let keys: serde_json::Map<String, serde_json::Value> = self
            .inner
            .one_time_keys()
            .into_iter()
            .map(|(id, k)| (id.to_base64(), serde_json::Value::String(k.to_base64())))
            .collect();
        serde_json::Value::Object(keys).to_string()
    }

    pub fn generate_fallback_key(&mut self) {
        self.inner.generate_fallback_key();
    }

    /// The unpublished fallback (last-resort) key, as JSON {keyId: base64 public key} (empty once published).
    pub fn fallback_key(&self) -> String {
        let keys: serde_json::Map<String, serde_json::Value> = self
            .inner
            .fallback_key()
            .into_iter()
            .map(|(id, k)| (id.to_base64(), serde_json::Value::String(k.to_base64())))
            .collect();
        serde_json::Value::Object(keys).to_string()
    }

    pub fn mark_keys_as_published(&mut self) {
        self.inner.mark_keys_as_published();
    }

    /// Starts a session with another device from its identity key and one of its prekeys.
    pub fn create_outbound_session(&self, identity_key: &str, one_time_key: &str) -> Result<Session, JsError> {
        let identity = Curve25519PublicKey::from_base64(identity_key).map_err(fail)?;
        let otk = Curve25519PublicKey::from_base64(one_time_key).map_err(fail)?;
        let inner = self.inner.create_outbound_session(SessionConfig::version_1(), identity, otk).map_err(fail)?;
        Ok(Session { inner })
    }

    /// Answers another device's first message (a pre-key message, base64): the session and its plaintext.
    pub fn create_inbound_session(&mut self, identity_key: &str, body: &str) -> Result<InboundSession, JsError> {
        let identity = Curve25519PublicKey::from_base64(identity_key).map_err(fail)?;
        let message = PreKeyMessage::from_bytes(&unb64(body)?).map_err(fail)?;
        let r = self.inner.create_inbound_session(SessionConfig::version_1(), identity, &message).map_err(fail)?;
        Ok(InboundSession { session: Some(Session { inner: r.session }), plaintext: String::from_utf8(r.plaintext).map_err(fail)? })
    }
}

impl Default for Account {
    fn default() -> Self {
        Self::new()
    }
}

/// What answering a pre-key message yields.
#[wasm_bindgen]
pub struct InboundSession {
    session: Option<Session>,
    plaintext: String,
}

#[wasm_bindgen]
impl InboundSession {
    #[wasm_bindgen(getter)]
    pub fn plaintext(&self) -> String {
        self.plaintext.clone()
    }

    /// The session (once).
    pub fn take_session(&mut self) -> Result<Session, JsError> {
        self.session.take().ok_or_else(|| JsError::new("the session was taken already"))
    }
}

/// A pairwise Olm session (Double Ratchet) with one other device.
#[wasm_bindgen]
pub struct Session {
    inner: OlmSession,
}

/// An Olm message: type 0 is a pre-key message (it sets the session up), 1 a normal one.
#[wasm_bindgen]
pub struct Encrypted {
    message_type: usize,
    body: String,
}

#[wasm_bindgen]
impl Encrypted {
    #[wasm_bindgen(getter)]
    pub fn message_type(&self) -> usize {
        self.message_type
    }

    #[wasm_bindgen(getter)]
    pub fn body(&self) -> String {
        self.body.clone()
    }
}

#[wasm_bindgen]
impl Session {
    pub fn encrypt(&mut self, plaintext: &str) -> Result<Encrypted, JsError> {
        let (message_type, bytes) = self.inner.encrypt(plaintext).map_err(fail)?.to_parts();
        Ok(Encrypted { message_type, body: b64(&bytes) })
    }

    pub fn decrypt(&mut self, message_type: usize, body: &str) -> Result<String, JsError> {
        let message = OlmMessage::from_parts(message_type, &unb64(body)?).map_err(fail)?;
        String::from_utf8(self.inner.decrypt(&message).map_err(fail)?).map_err(fail)
    }
}

/// A group sender key (Megolm), held by its sender: one ciphertext per message for every member.
#[wasm_bindgen]
pub struct OutboundGroupSession {
    inner: GroupSession,
}

#[wasm_bindgen]
impl OutboundGroupSession {
    #[wasm_bindgen(constructor)]
    pub fn new() -> OutboundGroupSession {
        OutboundGroupSession { inner: GroupSession::new(MegolmConfig::version_1()) }
    }

    /// The key the members need (sent to each pairwise over Olm), at the current message index.
    #[wasm_bindgen(getter)]
    pub fn session_key(&self) -> String {
        self.inner.session_key().to_base64()
    }

    #[wasm_bindgen(getter)]
    pub fn message_index(&self) -> u32 {
        self.inner.message_index()
    }

    /// One ciphertext (base64) for every member holding the session key.
    pub fn encrypt(&mut self, plaintext: &str) -> String {
        self.inner.encrypt(plaintext).to_base64()
    }
}

impl Default for OutboundGroupSession {
    fn default() -> Self {
        Self::new()
    }
}

/// A member's copy of someone's group sender key.
#[wasm_bindgen]
pub struct InboundGroupSessionKey {
    inner: InboundGroupSession,
}

/// A decrypted group message and its index (a repeated index is a replay).
#[wasm_bindgen]
pub struct GroupPlaintext {
    plaintext: String,
    index: u32,
}

#[wasm_bindgen]
impl GroupPlaintext {
    #[wasm_bindgen(getter)]
    pub fn plaintext(&self) -> String {
        self.plaintext.clone()
    }

    #[wasm_bindgen(getter)]
    pub fn index(&self) -> u32 {
        self.index
    }
}

#[wasm_bindgen]
impl InboundGroupSessionKey {
    #[wasm_bindgen(constructor)]
    pub fn new(session_key: &str) -> Result<InboundGroupSessionKey, JsError> {
        let key = SessionKey::from_base64(session_key).map_err(fail)?;
        Ok(InboundGroupSessionKey { inner: InboundGroupSession::new(&key, MegolmConfig::version_1()) })
    }

    #[wasm_bindgen(getter)]
    pub fn first_known_index(&self) -> u32 {
        self.inner.first_known_index()
    }

    pub fn decrypt(&mut self, ciphertext: &str) -> Result<GroupPlaintext, JsError> {
        let message = MegolmMessage::from_base64(ciphertext).map_err(fail)?;
        let d = self.inner.decrypt(&message).map_err(fail)?;
        Ok(GroupPlaintext { plaintext: String::from_utf8(d.plaintext).map_err(fail)?, index: d.message_index })
    }
}

/// The methods every session type shares: its id, and its encrypted pickle (AES-256 under a 32-byte key).
macro_rules! pickled_session {
    ($wrapper:ident, $inner:ty, $pickle:ty) => {
        #[wasm_bindgen]
        impl $wrapper {
            pub fn from_pickle(pickle: &str, key: &[u8]) -> Result<$wrapper, JsError> {
                let p = <$pickle>::from_encrypted(pickle, &pickle_key(key)?).map_err(fail)?;
                Ok($wrapper { inner: <$inner>::from_pickle(p) })
            }

            pub fn pickle(&self, key: &[u8]) -> Result<String, JsError> {
                Ok(self.inner.pickle().encrypt(&pickle_key(key)?))
            }

            #[wasm_bindgen(getter)]
            pub fn session_id(&self) -> String {
                self.inner.session_id()
            }
        }
    };
}

pickled_session!(Session, OlmSession, SessionPickle);
pickled_session!(OutboundGroupSession, GroupSession, GroupSessionPickle);
pickled_session!(InboundGroupSessionKey, InboundGroupSession, InboundGroupSessionPickle);

/// Whether `signature` (base64) is `key`'s (Ed25519, base64) over `message`.
#[wasm_bindgen]
pub fn verify_ed25519(key: &str, message: &str, signature: &str) -> bool {
    match (Ed25519PublicKey::from_base64(key), Ed25519Signature::from_base64(signature)) {
        (Ok(k), Ok(s)) => k.verify(message.as_bytes(), &s).is_ok(),
        _ => false,
    }
}

/// The session a pre-key message (base64) belongs to, so a device can tell a new session from a repeat.
#[wasm_bindgen]
pub fn prekey_session_id(body: &str) -> Result<String, JsError> {
    Ok(PreKeyMessage::from_bytes(&unb64(body)?).map_err(fail)?.session_id())
}
