//! A reverse proxy in front of moto that authorizes like AWS (web identity, IAM policies).
