use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use rsa::{BigUint, RsaPublicKey};
use serde_json::{Value, json};
use sha2::Sha256;

fn verify_with_jwks(token: &str, jwks: &Value) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let key = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).expect("kid in JWKS");
    let n = BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap());
    let e = BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(key["e"].as_str().unwrap()).unwrap());
    let verifier = VerifyingKey::<Sha256>::new(RsaPublicKey::new(n, e).unwrap());
    let signature = Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
    verifier
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("token verifies against the served JWKS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

#[tokio::test]
async fn token_request_tokens_verify_against_the_served_jwks() {
    let (mut cluster, ns) = cluster_with_namespace("token").await;
    let client = cluster.client();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let sa = sas
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "robot"}})).unwrap())
        .await
        .unwrap();
    let request = serde_json::from_value(json!({"spec": {"audiences": ["sts.amazonaws.com"], "expirationSeconds": 3600}})).unwrap();
    let response = sas.create_token_request("robot", &PostParams::default(), &request).await.unwrap();
    let token = response.status.unwrap().token.unwrap();

    let discovery = cluster.get_raw("/.well-known/openid-configuration").await.unwrap();
    let issuer = discovery["issuer"].as_str().unwrap().to_string();
    assert!(discovery["jwks_uri"].as_str().unwrap().ends_with("/openid/v1/jwks"));
    let jwks = cluster.get_raw("/openid/v1/jwks").await.unwrap();
    let claims = verify_with_jwks(&token, &jwks);
    assert_eq!(claims["iss"], json!(issuer));
    assert_eq!(claims["sub"], json!(format!("system:serviceaccount:{ns}:robot")));
    assert_eq!(claims["aud"], json!(["sts.amazonaws.com"]));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    assert_eq!(claims["kubernetes.io"]["namespace"], json!(ns));
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "robot");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["uid"], json!(sa.metadata.uid.unwrap()));

    // A token for another audience does not authenticate to the API server.
    let foreign = cluster.client_for_token(&token).await.unwrap();
    let ssar: Api<SelfSubjectAccessReview> = Api::all(foreign);
    let review = serde_json::from_value(json!({"spec": {"nonResourceAttributes": {"path": "/version", "verb": "get"}}})).unwrap();
    let err = api_error(ssar.create(&PostParams::default(), &review).await);
    assert_eq!((err.code, err.reason.as_str()), (401, "Unauthorized"));

    // A token for the API server's audience does.
    let api_token = service_account_token(&client, &ns, "caller").await;
    let own = cluster.client_for_token(&api_token).await.unwrap();
    let ssar: Api<SelfSubjectAccessReview> = Api::all(own);
    let answer = ssar.create(&PostParams::default(), &review).await.unwrap();
    assert!(answer.status.unwrap().allowed);

    // Too short a lifetime is invalid.
    let short = serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 60}})).unwrap();
    let err = api_error(sas.create_token_request("robot", &PostParams::default(), &short).await);
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
    );
    cluster.cleanup().await;
}
