//! JWT signing micro-benchmark (no criterion; `harness = false`).
//!
//! Measures, each on ONE thread for a fixed wall-clock window after a warm-up:
//!   1. bare RS256 (RSA-2048, PKCS#1 v1.5 / SHA-256) signing with a pre-parsed aws-lc-rs key;
//!   2. `RsaKeyPair::from_der` + sign on every op — what `jsonwebtoken::encode` does internally
//!      (jsonwebtoken 10's aws-lc backend re-parses the PKCS#1 DER key on every signature);
//!   3. full `jsonwebtoken::encode` of an RFC 9068 access token (typ "at+jwt", kid) with RS256;
//!   4. ES256 and EdDSA signing with pre-parsed aws-lc-rs keys (plus `jsonwebtoken::encode`
//!      with ES256 / EdDSA for reference).
//!
//! Run it pinned to one core (the dev machine has 2 cores; `scripts/bench.sh` runs it the same
//! way so that the figure is comparable to the load test, whose server is pinned to CPU 0):
//!
//! ```text
//! taskset -c 0 cargo bench -p latchkey --bench signing
//! ```
//!
//! Env: `SIGNING_BENCH_SECS` (default 3) measuring window per row, `SIGNING_BENCH_WARMUP_MS`
//! (default 500) warm-up per row.
//!
//! Before measuring, the benchmark checks that a token produced by `jsonwebtoken::encode`
//! (RS256, ES256, EdDSA) verifies with `jsonwebtoken::decode` against the public key, and that
//! the bare aws-lc-rs signatures verify, so it cannot silently measure garbage.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair,
    UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

const ISSUER: &str = "https://id.example.com/apps/acme";
const AUDIENCE: &str = "https://api.example.com";

struct Row {
    name: &'static str,
    ops: u64,
    elapsed: Duration,
}

impl Row {
    fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    fn us_per_op(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / self.ops as f64
    }
}

/// Runs `op` for `warmup`, then counts how many times it completes within `window`.
fn measure(name: &'static str, warmup: Duration, window: Duration, mut op: impl FnMut()) -> Row {
    let start = Instant::now();
    while start.elapsed() < warmup {
        op();
    }
    let start = Instant::now();
    let mut ops: u64 = 0;
    let elapsed = loop {
        op();
        ops += 1;
        let e = start.elapsed();
        if e >= window {
            break e;
        }
    };
    let row = Row { name, ops, elapsed };
    eprintln!("  done: {name}");
    row
}

/// Reads one DER TLV: returns (tag, contents, rest).
fn der_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let first = input[1] as usize;
    let (len, hdr) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        assert!((1..=4).contains(&n), "unsupported DER length");
        let len = input[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, 2 + n)
    };
    (tag, &input[hdr..hdr + len], &input[hdr + len..])
}

/// Extracts the PKCS#1 `RSAPrivateKey` from a PKCS#8 `PrivateKeyInfo` (RFC 5208):
/// SEQUENCE { INTEGER version, SEQUENCE algorithm, OCTET STRING privateKey, ... }.
/// `EncodingKey::from_rsa_der` and `RsaKeyPair::from_der` both want the PKCS#1 form.
fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Vec<u8> {
    let (tag, seq, _) = der_tlv(pkcs8);
    assert_eq!(tag, 0x30, "PrivateKeyInfo is not a SEQUENCE");
    let (tag, _version, rest) = der_tlv(seq);
    assert_eq!(tag, 0x02, "missing version INTEGER");
    let (tag, _alg, rest) = der_tlv(rest);
    assert_eq!(tag, 0x30, "missing AlgorithmIdentifier");
    let (tag, key, _) = der_tlv(rest);
    assert_eq!(tag, 0x04, "missing privateKey OCTET STRING");
    key.to_vec()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs()
}

fn random_id(rng: &SystemRandom) -> String {
    let mut buf = [0u8; 16];
    rng.fill(&mut buf).expect("rng");
    B64.encode(buf)
}

/// A realistic RFC 9068 access-token claims set.
fn access_token_claims(rng: &SystemRandom) -> Value {
    let iat = now_secs();
    json!({
        "iss": ISSUER,
        "sub": "0192f5c6-7a3e-7c1d-9b7e-2f4d8a1c3e5b",
        "aud": AUDIENCE,
        "exp": iat + 3600,
        "iat": iat,
        "jti": random_id(rng),
        "client_id": "lk_7Hq2mR9xVb3nT5wK",
        "scope": "openid profile email api:read api:write",
    })
}

fn at_header(alg: Algorithm, kid: &str) -> Header {
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(kid.to_owned());
    header
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_audience(&[AUDIENCE]);
    v.set_issuer(&[ISSUER]);
    v
}

/// Encodes one access token and checks it round-trips through `jsonwebtoken::decode`.
fn check_jwt(alg: Algorithm, enc: &EncodingKey, dec: &DecodingKey, rng: &SystemRandom) -> usize {
    let claims = access_token_claims(rng);
    let token =
        jsonwebtoken::encode(&at_header(alg, "k1"), &claims, enc).expect("jsonwebtoken::encode");
    let data = jsonwebtoken::decode::<Value>(&token, dec, &validation(alg))
        .unwrap_or_else(|e| panic!("{alg:?} token does not verify: {e}"));
    assert_eq!(data.claims, claims, "{alg:?} claims changed in round trip");
    assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(data.header.kid.as_deref(), Some("k1"));
    // A tampered signature must be rejected (proves decode really verifies).
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    assert!(
        jsonwebtoken::decode::<Value>(&tampered, dec, &validation(alg)).is_err(),
        "{alg:?}: tampered token verified"
    );
    token.len()
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments (no filtering support).
    let secs: f64 = std::env::var("SIGNING_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let warmup_ms: u64 = std::env::var("SIGNING_BENCH_WARMUP_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let window = Duration::from_secs_f64(secs);
    let warmup = Duration::from_millis(warmup_ms);
    let rng = SystemRandom::new();

    // ---- keys ----------------------------------------------------------------------------
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).expect("generate RSA-2048");
    let rsa_pkcs8 = rsa.as_der().expect("RSA PKCS#8");
    let rsa_pkcs1 = pkcs8_to_pkcs1(rsa_pkcs8.as_ref());
    RsaKeyPair::from_der(&rsa_pkcs1).expect("PKCS#1 extracted from PKCS#8 parses");
    let rsa_pub_pkcs1 = rsa.public_key().as_ref().to_vec(); // RFC 8017 RSAPublicKey
    let rsa_enc = EncodingKey::from_rsa_der(&rsa_pkcs1);
    let rsa_dec = DecodingKey::from_rsa_der(&rsa_pub_pkcs1);

    let ec_pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("gen P-256");
    let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec_pkcs8.as_ref())
        .expect("parse P-256");
    let ec_pub = ec.public_key().as_ref().to_vec(); // uncompressed point 04||x||y
    let ec_enc = EncodingKey::from_ec_der(ec_pkcs8.as_ref());
    let ec_dec =
        DecodingKey::from_ec_components(&B64.encode(&ec_pub[1..33]), &B64.encode(&ec_pub[33..65]))
            .expect("EC decoding key");

    let ed_pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("gen Ed25519");
    let ed = Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref()).expect("parse Ed25519");
    let ed_pub = ed.public_key().as_ref().to_vec();
    let ed_enc = EncodingKey::from_ed_der(ed_pkcs8.as_ref());
    let ed_dec = DecodingKey::from_ed_der(&ed_pub);

    // ---- message: a realistic JWT signing input (base64url header '.' base64url claims) ---
    let header_b64 = B64.encode(
        serde_json::to_vec(&json!({"alg":"RS256","typ":"at+jwt","kid":"lk-2025-01-rsa-0001"}))
            .expect("json"),
    );
    let claims_b64 = B64.encode(serde_json::to_vec(&access_token_claims(&rng)).expect("json"));
    let msg = format!("{header_b64}.{claims_b64}").into_bytes();

    // ---- correctness checks (panic rather than measure garbage) ---------------------------
    let mut sig = vec![0u8; rsa.public_modulus_len()];
    rsa.sign(&RSA_PKCS1_SHA256, &rng, &msg, &mut sig)
        .expect("RSA sign");
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &rsa_pub_pkcs1)
        .verify(&msg, &sig)
        .expect("bare RS256 signature verifies");
    let es = ec.sign(&rng, &msg).expect("ES256 sign");
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &ec_pub)
        .verify(&msg, es.as_ref())
        .expect("bare ES256 signature verifies");
    UnparsedPublicKey::new(&ED25519, &ed_pub)
        .verify(&msg, ed.sign(&msg).as_ref())
        .expect("bare EdDSA signature verifies");
    let rs_len = check_jwt(Algorithm::RS256, &rsa_enc, &rsa_dec, &rng);
    check_jwt(Algorithm::ES256, &ec_enc, &ec_dec, &rng);
    check_jwt(Algorithm::EdDSA, &ed_enc, &ed_dec, &rng);

    let cpus = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Cpus_allowed_list:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
        })
        .unwrap_or_else(|| "?".to_owned());
    eprintln!(
        "signing bench: 1 thread, cpus allowed={cpus}, warm-up {warmup_ms} ms + {secs} s per row, \
         message {} bytes, RS256 access token {rs_len} chars; all signatures verified",
        msg.len()
    );

    // ---- measurements ---------------------------------------------------------------------
    let mut rows = Vec::new();
    rows.push(measure(
        "RS256 aws-lc-rs, pre-parsed key",
        warmup,
        window,
        || {
            let mut sig = [0u8; 256];
            rsa.sign(&RSA_PKCS1_SHA256, &rng, black_box(&msg), &mut sig)
                .expect("sign");
            black_box(&sig);
        },
    ));
    rows.push(measure(
        "RS256 aws-lc-rs, from_der + sign per op",
        warmup,
        window,
        || {
            let kp = RsaKeyPair::from_der(black_box(&rsa_pkcs1)).expect("from_der");
            let mut sig = vec![0u8; kp.public_modulus_len()];
            kp.sign(&RSA_PKCS1_SHA256, &rng, black_box(&msg), &mut sig)
                .expect("sign");
            black_box(&sig);
        },
    ));
    let rs_header = at_header(Algorithm::RS256, "lk-2025-01-rsa-0001");
    rows.push(measure(
        "RS256 jsonwebtoken::encode (RFC 9068 AT)",
        warmup,
        window,
        || {
            let claims = access_token_claims(&rng);
            let t = jsonwebtoken::encode(&rs_header, black_box(&claims), &rsa_enc).expect("encode");
            black_box(t);
        },
    ));
    rows.push(measure(
        "ES256 aws-lc-rs, pre-parsed key",
        warmup,
        window,
        || {
            let s = ec.sign(&rng, black_box(&msg)).expect("sign");
            black_box(s.as_ref());
        },
    ));
    rows.push(measure(
        "EdDSA aws-lc-rs, pre-parsed key",
        warmup,
        window,
        || {
            let s = ed.sign(black_box(&msg));
            black_box(s.as_ref());
        },
    ));
    let es_header = at_header(Algorithm::ES256, "lk-2025-01-ec-0001");
    rows.push(measure(
        "ES256 jsonwebtoken::encode (RFC 9068 AT)",
        warmup,
        window,
        || {
            let claims = access_token_claims(&rng);
            let t = jsonwebtoken::encode(&es_header, black_box(&claims), &ec_enc).expect("encode");
            black_box(t);
        },
    ));
    let ed_header = at_header(Algorithm::EdDSA, "lk-2025-01-ed-0001");
    rows.push(measure(
        "EdDSA jsonwebtoken::encode (RFC 9068 AT)",
        warmup,
        window,
        || {
            let claims = access_token_claims(&rng);
            let t = jsonwebtoken::encode(&ed_header, black_box(&claims), &ed_enc).expect("encode");
            black_box(t);
        },
    ));

    // ---- table ----------------------------------------------------------------------------
    println!();
    println!(
        "{:<44} {:>12} {:>10} {:>10}",
        "benchmark (1 thread)", "ops/s", "µs/op", "ops"
    );
    for r in &rows {
        println!(
            "{:<44} {:>12.0} {:>10.2} {:>10}",
            r.name,
            r.per_sec(),
            r.us_per_op(),
            r.ops
        );
    }
    let bare = rows[0].per_sec();
    let full = rows[2].per_sec();
    println!(
        "jsonwebtoken::encode RS256 reaches {:.0} % of bare pre-parsed RS256 signing",
        100.0 * full / bare
    );
}
