//! The cryptography of the node's TLS: exactly what two nodes need, nothing more.
//!
//! Every node speaks TLS 1.3 only and proves an ECDSA P-256 identity key
//! ([`crate::identity`]), on both sides. So the provider holds one cipher suite, one
//! key-exchange group and one signature algorithm, instead of rustls's default ring
//! provider (three suites, three groups, RSA, P-384 and Ed25519 signatures): link-time
//! optimisation then drops the rest of ring and rustls from the library (docs/edge.md,
//! "Size").
//!
//! - Cipher suite: TLS13_CHACHA20_POLY1305_SHA256 alone. Edge devices such as the
//!   Raspberry Pi 4 (Cortex-A72 without the ARMv8 crypto extension) have no AES
//!   instructions, where ChaCha20-Poly1305 is several times faster than AES-GCM in
//!   constant-time software; on x86_64 its vector code runs at gigabytes per second, far
//!   above what the network carries. One suite also drops all of ring's AES and GHASH code.
//! - Key exchange: SECP256R1 alone. The identity key is P-256, so its field arithmetic
//!   and tables are linked anyway; X25519 would add its own (measured in docs/edge.md).
//! - Signatures: ECDSA P-256 with SHA-256, to verify the peer's and to sign with ours.
//!
//! Nodes built before this offer all of ring's suites and groups, these among them, so
//! they still connect (a node of the earlier kind that dials sends an X25519 key share
//! first and is asked for a P-256 one: one more round trip).

use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use rustls::crypto::ring::{cipher_suite, kx_group};
use rustls::crypto::{CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer, alg_id};
use rustls::sign::{Signer, SigningKey, public_key_to_spki};
use rustls::{SignatureAlgorithm, SignatureScheme};

/// The provider of every TLS session of a node (both directions).
pub(crate) fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![cipher_suite::TLS13_CHACHA20_POLY1305_SHA256],
        kx_groups: vec![kx_group::SECP256R1],
        signature_verification_algorithms: P256_SIGNATURES,
        secure_random: &OsRandom,
        key_provider: &P256Keys,
    }
}

/// The one signature a peer may prove its key with.
static P256_SIGNATURES: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[webpki::ring::ECDSA_P256_SHA256],
    mapping: &[(
        SignatureScheme::ECDSA_NISTP256_SHA256,
        &[webpki::ring::ECDSA_P256_SHA256],
    )],
};

/// The system's random source, through ring (as rustls's own ring provider does).
#[derive(Debug)]
struct OsRandom;

impl SecureRandom for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        ring::rand::SecureRandom::fill(&SystemRandom::new(), buf).map_err(|_| GetRandomFailed)
    }
}

/// Loads the node's own key: ECDSA P-256 in PKCS#8, the form the identity gives.
#[derive(Debug)]
struct P256Keys;

impl KeyProvider for P256Keys {
    fn load_private_key(
        &self,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        let refused = |why: &str| rustls::Error::General(format!("the TLS key {why}"));
        let PrivateKeyDer::Pkcs8(der) = key else {
            return Err(refused("is not in PKCS#8 form"));
        };
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            der.secret_pkcs8_der(),
            &SystemRandom::new(),
        )
        .map_err(|e| refused(&format!("is not an ECDSA P-256 key ({e})")))?;
        Ok(Arc::new(P256Key(Arc::new(pair))))
    }
}

/// The node's key as TLS signs with it.
struct P256Key(Arc<EcdsaKeyPair>);

impl std::fmt::Debug for P256Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.write_str("P256Key")
    }
}

impl SigningKey for P256Key {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(P256Signer(self.0.clone())) as Box<dyn Signer>)
    }

    /// Lets rustls check that the certificate is of this key.
    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(public_key_to_spki(
            &alg_id::ECDSA_P256,
            self.0.public_key().as_ref(),
        ))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

/// Signs one handshake.
struct P256Signer(Arc<EcdsaKeyPair>);

impl std::fmt::Debug for P256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("P256Signer")
    }
}

impl Signer for P256Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.0
            .sign(&SystemRandom::new(), message)
            .map(|signature| signature.as_ref().to_vec())
            .map_err(|_| rustls::Error::General("signing with the TLS key failed".into()))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_holds_one_suite_one_group_and_p256_signatures_only() {
        let p = provider();
        let suites: Vec<_> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            suites,
            [rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256]
        );
        let groups: Vec<_> = p.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups, [rustls::NamedGroup::secp256r1]);
        assert_eq!(
            p.signature_verification_algorithms.supported_schemes(),
            [SignatureScheme::ECDSA_NISTP256_SHA256]
        );
    }

    #[test]
    fn the_node_key_signs_for_tls_and_other_kinds_of_key_are_refused() {
        let identity = crate::identity::Identity::generate().unwrap();
        let (_, der) = identity.tls_certificate().unwrap();
        let key = P256Keys
            .load_private_key(PrivateKeyDer::try_from(der).unwrap())
            .unwrap();
        assert_eq!(key.algorithm(), SignatureAlgorithm::ECDSA);
        assert!(key.choose_scheme(&[SignatureScheme::ED25519]).is_none());
        let signer = key
            .choose_scheme(&[SignatureScheme::ED25519, SignatureScheme::ECDSA_NISTP256_SHA256])
            .unwrap();
        assert_eq!(signer.scheme(), SignatureScheme::ECDSA_NISTP256_SHA256);
        let signature = signer.sign(b"handshake").unwrap();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            identity.public_key_raw(),
        );
        assert!(public.verify(b"handshake", &signature).is_ok());
        assert!(public.verify(b"another", &signature).is_err());

        let ed25519 = ring::signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let err = P256Keys
            .load_private_key(PrivateKeyDer::try_from(ed25519.as_ref().to_vec()).unwrap())
            .unwrap_err();
        assert!(
            err.to_string().contains("not an ECDSA P-256 key"),
            "{err}"
        );
    }
}
