//! Test harness: starts moto, the stand-ins and real terraform on loopback.
