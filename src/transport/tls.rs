//! TLS 1.3 for peer connections, both sides authenticated by their keys.
//!
//! Every node presents a self-signed certificate of its identity key (made at start by
//! rcgen). No certificate authority is involved: the verifiers below accept any
//! well-formed certificate whose holder proves, in the handshake, that it has the private
//! key (rustls checks that signature with the ring provider). Who the key belongs to is
//! decided after the handshake, by its fingerprint: the transport compares it with the
//! trusted peers ([`super::trust`]), so a refusal can be told to the peer and counted with
//! a clear reason instead of a bare TLS alert.
//!
//! Only TLS 1.3 is offered; no session tickets or resumption (every connection proves its
//! key afresh). The algorithms are the few the node needs ([`super::algorithms`]).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, DistinguishedName, ServerConfig,
    ServerConnection, SignatureScheme,
};

use super::TransportError;
use crate::identity::{Identity, TLS_NAME, fingerprint_of_spki};

/// The TLS settings of one node: its certificate and key, for both directions.
pub struct TlsContext {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext").finish_non_exhaustive()
    }
}

impl TlsContext {
    /// The TLS settings of the node whose key is `identity`.
    pub fn new(identity: &Identity) -> Result<TlsContext, TransportError> {
        let tls_error = |e: &dyn std::fmt::Display| TransportError::Tls {
            reason: e.to_string(),
        };
        let (cert, key) = identity.tls_certificate().map_err(|e| tls_error(&e))?;
        let cert = vec![CertificateDer::from(cert)];
        let key = PrivateKeyDer::try_from(key).map_err(|e| tls_error(&e))?;
        let provider = Arc::new(super::algorithms::provider());
        let verifier = Arc::new(AnyKeyHolder {
            algorithms: provider.signature_verification_algorithms,
        });
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls_error(&e))?
            .with_client_cert_verifier(verifier.clone())
            .with_single_cert(cert.clone(), key.clone_key())
            .map_err(|e| tls_error(&e))?;
        server.send_tls13_tickets = 0;
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls_error(&e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(cert, key)
            .map_err(|e| tls_error(&e))?;
        client.resumption = rustls::client::Resumption::disabled();
        Ok(TlsContext {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// The server side of an accepted connection.
    pub(super) fn accept(&self) -> Result<rustls::Connection, rustls::Error> {
        Ok(ServerConnection::new(self.server.clone())?.into())
    }

    /// The client side of a dialled connection.
    pub(super) fn dial(&self) -> Result<rustls::Connection, rustls::Error> {
        Ok(ClientConnection::new(self.client.clone(), server_name())?.into())
    }

    /// The client settings, for tests that play a peer by hand.
    #[cfg(feature = "internals")]
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }
}

/// The name a dialling node asks for: the same in every certificate ([`TLS_NAME`]).
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(TLS_NAME).expect("a valid DNS name")
}

/// The fingerprint of the key the peer proved it holds, once the handshake is done.
pub(super) fn peer_fingerprint(tls: &rustls::Connection) -> Option<String> {
    let cert = tls.peer_certificates()?.first()?;
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    Some(fingerprint_of_spki(cert.subject_public_key_info().as_ref()))
}

/// The socket as TLS writes to it: one buffer per call. rustls writes vectored, and a
/// vectored write on a socket is `writev`, which raises SIGPIPE when the peer has gone,
/// killing a C or C++ host that did not ignore it; a plain write is `send` with
/// MSG_NOSIGNAL, which reports the error instead.
pub(super) struct NoSigpipe<'a>(pub(super) &'a mut mio::net::TcpStream);

impl std::io::Write for NoSigpipe<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Accepts any well-formed certificate, for either side; the handshake signature is still
/// checked against its key, so the peer holds the private key of the fingerprint the
/// transport then judges.
#[derive(Debug)]
struct AnyKeyHolder {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyKeyHolder {
    fn well_formed(cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        webpki::EndEntityCert::try_from(cert)
            .map(|_| ())
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))
    }

    fn tls12_refused() -> rustls::Error {
        rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic)
    }
}

impl ServerCertVerifier for AnyKeyHolder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Self::well_formed(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(Self::tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for AnyKeyHolder {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Self::well_formed(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(Self::tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Moves what `from` has to send into `to`; returns whether anything moved.
    fn deliver(from: &mut rustls::Connection, to: &mut rustls::Connection) -> bool {
        let mut wire = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut wire).unwrap();
        }
        let mut slice = &wire[..];
        while !slice.is_empty() {
            to.read_tls(&mut slice).unwrap();
            to.process_new_packets().unwrap();
        }
        !wire.is_empty()
    }

    /// Runs a client and a server connection against each other in memory until neither
    /// has anything to send (bounded).
    fn exchange(client: &mut rustls::Connection, server: &mut rustls::Connection) {
        for _ in 0..20 {
            let moved = deliver(client, server) | deliver(server, client);
            if !moved {
                return;
            }
        }
        panic!("the handshake did not settle");
    }

    #[test]
    fn both_sides_learn_the_fingerprint_of_the_others_key_and_talk_privately() {
        let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let (ta, tb) = (TlsContext::new(&a).unwrap(), TlsContext::new(&b).unwrap());
        let mut client = ta.dial().unwrap();
        let mut server = tb.accept().unwrap();
        exchange(&mut client, &mut server);
        assert!(!client.is_handshaking() && !server.is_handshaking());
        assert_eq!(peer_fingerprint(&client).as_deref(), Some(b.fingerprint()));
        assert_eq!(peer_fingerprint(&server).as_deref(), Some(a.fingerprint()));
        assert_eq!(
            client.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        assert_eq!(
            client.negotiated_cipher_suite().map(|s| s.suite()),
            Some(rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)
        );
        client.writer().write_all(b"hello").unwrap();
        let mut wire = Vec::new();
        client.write_tls(&mut wire).unwrap();
        assert!(!wire.windows(5).any(|w| w == b"hello"), "the bytes are encrypted");
        server.read_tls(&mut &wire[..]).unwrap();
        server.process_new_packets().unwrap();
        let mut got = [0u8; 5];
        server.reader().read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
    }

    /// Runs the handshake of a client built by hand against a node's server side (bounded):
    /// Ok once the server knows the client's key, or the server's refusal.
    fn handshake_with_node(client: ClientConfig) -> Result<(), rustls::Error> {
        let tb = TlsContext::new(&Identity::generate().unwrap()).unwrap();
        let mut client: rustls::Connection = ClientConnection::new(Arc::new(client), server_name())
            .unwrap()
            .into();
        let mut server = tb.accept().unwrap();
        for _ in 0..10 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            server.read_tls(&mut &wire[..]).unwrap();
            if let Err(e) = server.process_new_packets() {
                assert!(peer_fingerprint(&server).is_none());
                return Err(e);
            }
            if !server.is_handshaking() {
                assert!(peer_fingerprint(&server).is_some());
                return Ok(());
            }
            let mut back = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut back).unwrap();
            }
            client.read_tls(&mut &back[..]).unwrap();
            let _ = client.process_new_packets();
        }
        panic!("the handshake neither ended nor failed");
    }

    /// A client of rustls's full ring provider with only the given suites and groups, and
    /// a key of its own.
    fn client_offering(
        suites: &[rustls::SupportedCipherSuite],
        groups: &[&'static dyn rustls::crypto::SupportedKxGroup],
    ) -> ClientConfig {
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: suites.to_vec(),
            kx_groups: groups.to_vec(),
            ..rustls::crypto::ring::default_provider()
        };
        let algorithms = provider.signature_verification_algorithms;
        let (cert, key) = Identity::generate().unwrap().tls_certificate().unwrap();
        ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyKeyHolder { algorithms }))
            .with_client_auth_cert(
                vec![CertificateDer::from(cert)],
                PrivateKeyDer::try_from(key).unwrap(),
            )
            .unwrap()
    }

    #[test]
    fn a_peer_without_a_certificate_fails_the_handshake() {
        let provider = Arc::new(crate::transport::algorithms::provider());
        let anonymous = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyKeyHolder {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth();
        assert_eq!(
            handshake_with_node(anonymous),
            Err(rustls::Error::NoCertificatesPresented)
        );
    }

    #[test]
    fn a_peer_of_the_full_ring_provider_still_connects() {
        use rustls::crypto::ring::{ALL_CIPHER_SUITES, ALL_KX_GROUPS};
        assert_eq!(
            handshake_with_node(client_offering(ALL_CIPHER_SUITES, ALL_KX_GROUPS)),
            Ok(())
        );
    }

    #[test]
    fn a_peer_offering_only_aes_suites_is_refused_for_want_of_a_common_suite() {
        use rustls::crypto::ring::{ALL_KX_GROUPS, cipher_suite};
        let aes = [
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_AES_128_GCM_SHA256,
        ];
        let refusal = handshake_with_node(client_offering(&aes, ALL_KX_GROUPS));
        assert_eq!(
            refusal,
            Err(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::NoCipherSuitesInCommon
            ))
        );
    }

    #[test]
    fn a_peer_offering_only_other_key_exchange_groups_is_refused_for_want_of_a_common_group() {
        use rustls::crypto::ring::{ALL_CIPHER_SUITES, kx_group};
        let refusal = handshake_with_node(client_offering(
            ALL_CIPHER_SUITES,
            &[kx_group::X25519, kx_group::SECP384R1],
        ));
        assert_eq!(
            refusal,
            Err(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::NoKxGroupsInCommon
            ))
        );
    }
}
