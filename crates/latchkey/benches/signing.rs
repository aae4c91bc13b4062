//! Signing micro-benchmark (`harness = false`): what one core can sign, bare and through the
//! server's own `Signer`, so the token endpoint's figure can be read against it.
//!
//! ```text
//! taskset -c 0 cargo bench -p latchkey --bench signing
//! ```
//!
//! Rows, each on one thread for `SIGNING_BENCH_SECS` (default 3) after a 500 ms warm-up:
//! 1. bare RS256 (RSA-2048, PKCS#1 v1.5, SHA-256) with a pre-parsed aws-lc-rs key;
//! 2. `latchkey::keys::Signer` RS256: a complete RFC 9068 access token (header, claims,
//!    base64url, signature), as the token endpoint makes it;
//! 3. `jsonwebtoken::encode` RS256 of the same token, for reference: it re-parses the key on
//!    every call, which is why the server does not use it for signing;
//! 4. `Signer` with ES256 and EdDSA.
//!
//! Every token is verified once before timing, so the benchmark cannot measure garbage.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use latchkey::keys::material::{self, Signer, Verified};
use latchkey::keys::{SigningAlg, published_jwk};
use serde_json::{Value, json};

fn measure(name: &str, window: Duration, mut op: impl FnMut()) -> (String, f64) {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(500) {
        op();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < window {
        op();
        n += 1;
    }
    (name.to_string(), n as f64 / start.elapsed().as_secs_f64())
}

fn claims() -> Value {
    json!({
        "iss": "https://id.example.com/apps/acme", "sub": "c1", "aud": "https://id.example.com/apps/acme",
        "jti": "0123456789abcdefghijkl", "client_id": "c1", "scope": "api:read", "token_type": "service"
    })
}

fn main() {
    let secs = std::env::var("SIGNING_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let window = Duration::from_secs(secs);
    let now = chrono::Utc::now().timestamp();
    let mut rows = Vec::new();

    let rsa = material::generate(SigningAlg::RS256).expect("RSA key");
    let bare = RsaKeyPair::from_pkcs8(&rsa.pkcs8).expect("parse");
    let rng = SystemRandom::new();
    let message = vec![b'x'; 440];
    let mut sig = vec![0u8; bare.public_modulus_len()];
    rows.push(measure("RS256 bare aws-lc-rs, pre-parsed key", window, || {
        bare.sign(&RSA_PKCS1_SHA256, &rng, black_box(&message), &mut sig).expect("sign");
    }));

    for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
        let generated;
        let g = if alg == SigningAlg::RS256 {
            &rsa
        } else {
            generated = material::generate(alg).expect("key");
            &generated
        };
        let signer = Signer::from_pkcs8("k1", alg, &g.pkcs8).expect("signer");
        let public = material::public_key(&published_jwk(&g.public_jwk, "k1", alg)).expect("jwk");
        let claims = claims();
        let token = signer.sign("at+jwt", &claims, now, now + 900).expect("sign");
        let v: Verified<Value> =
            material::verify(&token, alg, &public, "at+jwt").expect("the token must verify");
        assert_eq!(v.claims["sub"], "c1");
        rows.push(measure(
            &format!("{} latchkey Signer, RFC 9068 access token", alg.as_str()),
            window,
            || {
                black_box(signer.sign("at+jwt", black_box(&claims), now, now + 900).expect("sign"));
            },
        ));
    }

    // Reference: jsonwebtoken, which parses the RSA key inside every encode.
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &rsa.pkcs8)
    );
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("pem");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some("k1".into());
    let mut c = claims();
    c["iat"] = json!(now);
    c["exp"] = json!(now + 900);
    let t = jsonwebtoken::encode(&header, &c, &key).expect("encode");
    let public = material::public_key(&published_jwk(&rsa.public_jwk, "k1", SigningAlg::RS256)).expect("jwk");
    material::verify::<Value>(&t, SigningAlg::RS256, &public, "at+jwt").expect("jsonwebtoken token verifies");
    rows.push(measure("RS256 jsonwebtoken::encode (reference)", window, || {
        black_box(jsonwebtoken::encode(&header, black_box(&c), &key).expect("encode"));
    }));

    println!("{:<48} {:>12} {:>10}", "benchmark (1 thread)", "ops/s", "µs/op");
    for (name, rate) in &rows {
        println!("{name:<48} {rate:>12.0} {:>10.1}", 1e6 / rate);
    }
    println!("latchkey Signer RS256 reaches {:.0} % of bare RS256 signing", 100.0 * rows[1].1 / rows[0].1);
}
