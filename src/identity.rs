//! This node's identity: a key pair made on first start and kept in a file only its owner
//! can read (mode 0600), and the fingerprint peers will know it by (issue 12: the SHA-256
//! of the public key, as Syncthing's device ids are). The private key is never logged,
//! shown or sent; `Debug` prints the fingerprint only.

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

/// Why an identity could not be loaded or made. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading, writing or syncing the key file failed.
    #[error("identity key {path}: cannot {op}: {cause}")]
    Io {
        /// What was being done ("read", "write").
        op: &'static str,
        /// The key file.
        path: PathBuf,
        /// The operating system's reason.
        cause: String,
    },
    /// The key file can be read by others: a key anyone can copy identifies nobody.
    #[error(
        "identity key {path} can be read by others (mode {mode:o}); make it private with \
         chmod 600 {path}"
    )]
    Exposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file holds no usable key.
    #[error("identity key {path} is damaged: {reason}")]
    Damaged {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Making a key failed (the system's random source).
    #[error("cannot make an identity key: {0}")]
    Generate(String),
    /// The key was made for another node id: peers trust a key as one node id, so a node
    /// cannot change its id and keep its key.
    #[error(
        "identity key {path} belongs to node id {bound}, not {configured}: a node id is bound \
         to its key (peers trust the pair). Use node id {bound}; or, to make this a new node \
         {configured}, remove {path} (or set identity_path to another file): a new key is made \
         and must be trusted again on the peers"
    )]
    OtherNodeId {
        /// The key file.
        path: PathBuf,
        /// The node id the key was made for.
        bound: String,
        /// The node id configured now.
        configured: String,
    },
    /// Signing failed (the system's random source: ECDSA needs a fresh random number for
    /// every signature).
    #[error("cannot sign with the identity key: {0}")]
    Sign(String),
}

/// The DER header of an ECDSA P-256 SubjectPublicKeyInfo, up to its public key: SEQUENCE,
/// AlgorithmIdentifier (id-ecPublicKey, prime256v1), BIT STRING of 66 bytes (no unused
/// bits, then the 65-byte point). Every P-256 key's SPKI is these 26 bytes then its point,
/// so a peer that sends only its point (discovery) still has a fingerprint.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
    0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Length of an uncompressed P-256 public key point (SEC1: 0x04, X, Y).
pub const P256_POINT_LEN: usize = 65;

/// The fingerprint of a public key given as its DER SubjectPublicKeyInfo: the SHA-256 of
/// it, as 64 lowercase hex digits.
pub fn fingerprint_of_spki(spki_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The fingerprint of an ECDSA P-256 public key given as its uncompressed point: the same
/// as [`Identity::fingerprint`] of the identity that holds the key.
pub fn fingerprint_of_p256_point(point: &[u8; P256_POINT_LEN]) -> String {
    let mut spki = [0u8; P256_SPKI_PREFIX.len() + P256_POINT_LEN];
    spki[..P256_SPKI_PREFIX.len()].copy_from_slice(&P256_SPKI_PREFIX);
    spki[P256_SPKI_PREFIX.len()..].copy_from_slice(point);
    fingerprint_of_spki(&spki)
}

/// A node's key pair and its fingerprint.
pub struct Identity {
    key: NodeKey,
    fingerprint: String,
}

/// An ECDSA P-256 key pair (ring's), with its PKCS#8 form: what the key file holds and
/// what TLS loads. The only kind of key a node has, so nothing else is linked (rcgen's
/// own key pair would bring RSA and Ed25519 signing into the library: docs/edge.md, "Size").
struct NodeKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
}

impl NodeKey {
    fn generate() -> Result<NodeKey, IdentityError> {
        let generate = |e: ring::error::Unspecified| IdentityError::Generate(e.to_string());
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(generate)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        Ok(NodeKey {
            pair,
            pkcs8: pkcs8.as_ref().to_vec(),
        })
    }

    /// The key of a PEM text ("PRIVATE KEY": PKCS#8); the reason when it holds none, or
    /// one of another kind than ECDSA P-256.
    fn from_pem(text: &str) -> Result<NodeKey, String> {
        let pem = pem::parse(text).map_err(|e| format!("no PEM key: {e}"))?;
        let pkcs8 = pem.into_contents();
        // Peers verify this node's signatures as ECDSA P-256 (discovery) and expect its
        // fingerprint from a P-256 point: another kind of key, written by hand or another
        // tool, would identify the node to nobody.
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|e| format!("not an ECDSA P-256 key in PKCS#8 form ({e})"))?;
        Ok(NodeKey { pair, pkcs8 })
    }

    /// The PEM text of the key (what rcgen wrote for earlier versions, byte for byte).
    fn pem(&self) -> String {
        let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
        pem::encode_config(&pem::Pem::new("PRIVATE KEY", self.pkcs8.clone()), config)
    }

    /// The uncompressed point (0x04, X, Y).
    fn point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The DER SubjectPublicKeyInfo.
    fn spki(&self) -> Vec<u8> {
        [&P256_SPKI_PREFIX[..], self.point()].concat()
    }
}

/// What rcgen needs to make the TLS certificate.
impl rcgen::PublicKeyData for NodeKey {
    fn der_bytes(&self) -> &[u8] {
        self.point()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for NodeKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.pair
            .sign(&SystemRandom::new(), msg)
            .map(|signature| signature.as_ref().to_vec())
            .map_err(|_| rcgen::Error::RingUnspecified)
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A new identity, kept in memory only (a memory-only node: a new one each start).
    pub fn generate() -> Result<Identity, IdentityError> {
        Ok(Identity::from_key(NodeKey::generate()?))
    }

    /// The identity of node `node_id` kept at `path`, made (and written, private to its
    /// owner, durably) when the file does not exist yet. The file records the node id it
    /// was made for; another node id is refused ([`IdentityError::OtherNodeId`]). A key
    /// file of an earlier version, without a node id, is bound to `node_id` now.
    pub fn load_or_create(path: &Path, node_id: &str) -> Result<Identity, IdentityError> {
        let io = |op: &'static str| {
            let path = path.to_path_buf();
            move |e: std::io::Error| IdentityError::Io {
                op,
                path,
                cause: crate::io_error::describe_io(&e),
            }
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_private(path)?;
                let (bound, pem, key) = parse_key_file(path, &text)?;
                match bound {
                    Some(bound) if bound != node_id => {
                        return Err(IdentityError::OtherNodeId {
                            path: path.to_path_buf(),
                            bound: bound.to_string(),
                            configured: node_id.to_string(),
                        });
                    }
                    Some(_) => {}
                    None => {
                        write_private(path, key_file(node_id, pem).as_bytes())
                            .map_err(io("write"))?;
                    }
                }
                Ok(Identity::from_key(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Identity::generate()?;
                let text = key_file(node_id, &identity.key.pem());
                write_private(path, text.as_bytes()).map_err(io("write"))?;
                log::info!(
                    "made this node's identity key {} (fingerprint {})",
                    path.display(),
                    identity.fingerprint
                );
                Ok(identity)
            }
            Err(e) => Err(io("read")(e)),
        }
    }

    /// The node id a key file is bound to (none for a file of an earlier version) and
    /// the fingerprint of its key, read without making or changing anything (a backup's
    /// copy of the key is checked this way).
    pub(crate) fn inspect(path: &Path, text: &str) -> Result<(Option<String>, String), IdentityError> {
        let (bound, _, key) = parse_key_file(path, text)?;
        Ok((
            bound.map(str::to_string),
            Identity::from_key(key).fingerprint,
        ))
    }

    fn from_key(key: NodeKey) -> Identity {
        let fingerprint = fingerprint_of_spki(&key.spki());
        Identity { key, fingerprint }
    }

    /// The SHA-256 of the public key (its DER SubjectPublicKeyInfo), as 64 lowercase hex
    /// digits: what an operator compares and configures to trust this node.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A self-signed certificate of this key and the key itself (PKCS#8 DER), for the
    /// transport's TLS. Made anew at each start: peers trust the key (its fingerprint),
    /// never the certificate, so its names and dates carry no meaning.
    pub(crate) fn tls_certificate(&self) -> Result<(Vec<u8>, Vec<u8>), IdentityError> {
        let mut params = rcgen::CertificateParams::new(vec![TLS_NAME.to_string()])
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        // The serial number and key identifier rcgen derives from the key when it has its
        // own cryptography (the first 20 bytes of the SHA-256 of the key; the serial a
        // positive number).
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.key.spki());
        let mut id = digest.as_ref()[..20].to_vec();
        params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(id.clone());
        id[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&id));
        let cert = params
            .self_signed(&self.key)
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        Ok((cert.der().to_vec(), self.key.pkcs8.clone()))
    }

    /// The public key as an uncompressed P-256 point (0x04, X, Y: 65 bytes), the form
    /// `ring::signature::UnparsedPublicKey` verifies with; see
    /// [`fingerprint_of_p256_point`].
    pub fn public_key_raw(&self) -> &[u8] {
        self.key.point()
    }

    /// Signs `msg`: ECDSA P-256 with SHA-256, the signature ASN.1 DER encoded (at most 72
    /// bytes), verifiable with `ring::signature::ECDSA_P256_SHA256_ASN1` and
    /// [`Identity::public_key_raw`]. Fails only when the system's random source does.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, IdentityError> {
        rcgen::SigningKey::sign(&self.key, msg).map_err(|e| IdentityError::Sign(e.to_string()))
    }
}

/// The name in every node's certificate. Peers authenticate keys, not names, so one fixed
/// name serves every node.
pub(crate) const TLS_NAME: &str = "softadastra";


/// The first line of a key file; the second names the node id, then the key in PEM.
const KEY_FILE_HEADER: &str = "softadastra-identity 1";

/// A key file's text: the header, the node id the key is bound to, the key.
fn key_file(node_id: &str, pem: &str) -> String {
    format!("{KEY_FILE_HEADER}\nnode-id {node_id}\n{pem}")
}

/// The node id a key file binds (none in a file of an earlier version: the bare PEM), and
/// its PEM text.
fn split_key_file(text: &str) -> Result<(Option<&str>, &str), String> {
    let Some(rest) = text.strip_prefix(KEY_FILE_HEADER) else {
        return Ok((None, text));
    };
    let rest = rest.strip_prefix('\n').ok_or("a bad header line")?;
    let (line, pem) = rest.split_once('\n').ok_or("no node id line")?;
    let node_id = line
        .strip_prefix("node-id ")
        .ok_or("the second line is not \"node-id <id>\"")?;
    crate::id::validate_node_id(node_id).map_err(|e| e.to_string())?;
    Ok((Some(node_id), pem))
}

/// A key file's bound node id, PEM text and key, checked: a P-256 key, a valid node id.
fn parse_key_file<'t>(
    path: &Path,
    text: &'t str,
) -> Result<(Option<&'t str>, &'t str, NodeKey), IdentityError> {
    let damaged = |reason: String| IdentityError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    let (bound, pem) = split_key_file(text).map_err(damaged)?;
    let key = NodeKey::from_pem(pem).map_err(damaged)?;
    Ok((bound, pem, key))
}

/// Refuses a key file others can read or write.
fn check_private(path: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| IdentityError::Io {
            op: "read the permissions of",
            path: path.to_path_buf(),
            cause: crate::io_error::describe_io(&e),
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` durably and private to its owner from the first byte: a
/// temporary file of mode 0600 beside it, synced, renamed over it, the directory synced.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    crate::io_error::sync_parent_dir(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_is_made_once_private_to_its_owner_and_read_back_with_the_same_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let made = Identity::load_or_create(&path, "node-1").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(made.fingerprint().len(), 64);
        assert!(made.fingerprint().bytes().all(|b| b.is_ascii_hexdigit()));
        let again = Identity::load_or_create(&path, "node-1").unwrap();
        assert_eq!(again.fingerprint(), made.fingerprint());
        let other = Identity::generate().unwrap();
        assert_ne!(other.fingerprint(), made.fingerprint());
    }

    #[test]
    fn a_key_is_bound_to_its_node_id_and_another_id_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let made = Identity::load_or_create(&path, "till-1").unwrap();
        let e = Identity::load_or_create(&path, "till-2").unwrap_err();
        assert!(matches!(e, IdentityError::OtherNodeId { .. }));
        let e = e.to_string();
        assert!(
            e.contains("belongs to node id till-1, not till-2") && e.contains("remove"),
            "{e}"
        );
        // Unchanged, and still the key of till-1.
        let again = Identity::load_or_create(&path, "till-1").unwrap();
        assert_eq!(again.fingerprint(), made.fingerprint());
    }

    #[test]
    fn a_key_file_of_an_earlier_version_is_bound_to_the_node_id_it_is_opened_with() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let old = Identity::generate().unwrap();
        write_private(&path, old.key.pem().as_bytes()).unwrap();
        let loaded = Identity::load_or_create(&path, "till-1").unwrap();
        assert_eq!(loaded.fingerprint(), old.fingerprint());
        assert!(Identity::load_or_create(&path, "till-2").is_err());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_key_file_with_a_bad_node_id_line_is_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let pem = Identity::generate().unwrap().key.pem();
        write_private(&path, format!("{KEY_FILE_HEADER}\nid x\n{pem}").as_bytes()).unwrap();
        let e = Identity::load_or_create(&path, "x").unwrap_err().to_string();
        assert!(e.contains("damaged") && e.contains("node-id"), "{e}");
    }

    #[test]
    fn a_key_others_can_read_is_refused_naming_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        Identity::load_or_create(&path, "node-1").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Identity::load_or_create(&path, "node-1").unwrap_err().to_string();
        assert!(e.contains("node.key") && e.contains("chmod 600"), "{e}");
    }

    #[test]
    fn a_damaged_key_is_an_error_naming_the_file_and_is_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        write_private(&path, b"not a key").unwrap();
        let e = Identity::load_or_create(&path, "node-1").unwrap_err().to_string();
        assert!(e.contains("node.key") && e.contains("damaged"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"not a key");
    }

    #[test]
    fn a_signature_verifies_with_the_public_key_and_fails_for_another_message() {
        use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
        let identity = Identity::generate().unwrap();
        let signature = identity.sign(b"hello").unwrap();
        assert!(signature.len() <= 72, "{}", signature.len());
        let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, identity.public_key_raw());
        assert!(key.verify(b"hello", &signature).is_ok());
        assert!(key.verify(b"hellO", &signature).is_err());
        let other = Identity::generate().unwrap();
        let other_key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, other.public_key_raw());
        assert!(other_key.verify(b"hello", &signature).is_err());
    }

    #[test]
    fn the_fingerprint_of_the_raw_point_is_the_identitys() {
        let identity = Identity::generate().unwrap();
        let point: [u8; P256_POINT_LEN] = identity.public_key_raw().try_into().unwrap();
        assert_eq!(point[0], 0x04, "uncompressed");
        assert_eq!(fingerprint_of_p256_point(&point), identity.fingerprint());
        // The SPKI rebuilt from the point is the key's own.
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&point);
        assert_eq!(spki, identity.key.spki());
    }

    #[test]
    fn a_key_of_another_algorithm_is_refused_as_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let ed25519 =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", ed25519.as_ref()));
        write_private(&path, pem.as_bytes()).unwrap();
        let e = Identity::load_or_create(&path, "node-1").unwrap_err().to_string();
        assert!(e.contains("node.key") && e.contains("not an ECDSA P-256 key"), "{e}");
    }

    #[test]
    fn debug_output_shows_the_fingerprint_and_never_the_key() {
        let identity = Identity::generate().unwrap();
        let shown = format!("{identity:?}");
        assert!(shown.contains(identity.fingerprint()));
        assert!(!shown.contains("PRIVATE"));
        let pem = identity.key.pem();
        let body: String = pem.lines().nth(1).unwrap().chars().take(16).collect();
        assert!(!shown.contains(&body));
    }
}
