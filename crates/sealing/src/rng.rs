//! The operating system's CSRNG behind the `rand_core` 0.9 traits that `hpke` 0.13 asks for.
//! The workspace's `rand` is on `rand_core` 0.6; this adapter avoids a second getrandom.

pub(crate) struct OsRng;

impl hpke::rand_core::RngCore for OsRng {
    fn next_u32(&mut self) -> u32 {
        hpke::rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        hpke::rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        // rand 0.8's OsRng panics if the OS cannot supply randomness, which is the right outcome
        // for a sealer: never seal with a weak ephemeral key.
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, dst)
    }
}

impl hpke::rand_core::CryptoRng for OsRng {}
