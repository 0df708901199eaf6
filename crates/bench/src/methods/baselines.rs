//! The methods that resolve nothing, measured beside the resolvers for
//! scale: memory baselines over the same buffer (memset, pattern fill, a
//! read sum, pattern verification), populating a new surface, a whole
//! probe with its JSON, a `unimem map` run and one socket round trip.

use super::{Fixture, Sample};
use crate::Res;
use std::time::Instant;
use unimem::surface::{Backing, Surface};

impl Fixture<'_> {
    fn buffer(&mut self) -> &mut [u8] {
        self.pin_mapping.as_mut_slice()
    }

    pub(super) fn roundtrip(&mut self) -> Res<Sample> {
        let echo = self.roundtrip.as_mut().ok_or("no echo thread")?;
        let t = Instant::now();
        echo.roundtrips(self.fd, crate::anchors::ROUNDTRIPS)?;
        Ok(Sample::timed(t.elapsed() / crate::anchors::ROUNDTRIPS))
    }

    pub(super) fn memset(&mut self) -> Res<Sample> {
        self.filled = false;
        let buf = self.buffer();
        let t = Instant::now();
        // SAFETY: `buf` is a live, writable slice of exactly this length.
        unsafe { std::ptr::write_bytes(buf.as_mut_ptr(), 0x5a, buf.len()) };
        let elapsed = t.elapsed();
        std::hint::black_box(&buf[buf.len() / 2]);
        Ok(Sample::timed(elapsed))
    }

    pub(super) fn fill(&mut self) -> Res<Sample> {
        let pattern = self.pattern;
        let buf = self.buffer();
        let t = Instant::now();
        pattern.fill(0, buf);
        let elapsed = t.elapsed();
        self.filled = true;
        Ok(Sample::timed(elapsed))
    }

    pub(super) fn readsum(&mut self) -> Res<Sample> {
        let buf = self.pin_mapping.as_slice();
        let t = Instant::now();
        let sum = buf
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
            .fold(0u64, u64::wrapping_add);
        let elapsed = t.elapsed();
        std::hint::black_box(sum);
        Ok(Sample::timed(elapsed))
    }

    pub(super) fn verify(&mut self) -> Res<Sample> {
        if !self.filled {
            let pattern = self.pattern;
            pattern.fill(0, self.buffer());
            self.filled = true;
        }
        let t = Instant::now();
        let v = self.pattern.verify(0, self.pin_mapping.as_slice());
        let elapsed = t.elapsed();
        if !v.ok() {
            return Err(format!("verify: {} words differ", v.mismatched_words).into());
        }
        Ok(Sample::timed(elapsed))
    }

    pub(super) fn populate(&mut self) -> Res<Sample> {
        let t = Instant::now();
        let s = Surface::create(self.len, Backing::Memfd)?;
        drop(s);
        Ok(Sample::timed(t.elapsed()))
    }

    pub(super) fn probe(&mut self) -> Res<Sample> {
        use std::io::Write;
        let t = Instant::now();
        let mut resolver = unimem::resolve::DirectResolver::new()?;
        let out = unimem::probe::probe(self.len, Backing::Memfd, 7, &mut resolver, |_| {})?;
        let segments = out.prepared.map.address_segment_count();
        let mut sink = std::io::BufWriter::with_capacity(1 << 16, std::io::sink());
        let doc = ProbeDoc {
            segments: unimem::core::report::json_segments(&out.prepared.map),
            integrity: &out.integrity,
            checksums: &out.checksums,
        };
        serde_json::to_writer(&mut sink, &doc)?;
        sink.flush()?;
        let ok = out.verified();
        drop(out);
        let elapsed = t.elapsed();
        if !ok {
            return Err("probe: not verified".into());
        }
        Ok(Sample {
            elapsed,
            sampled_pages: None,
            segments: Some(segments),
        })
    }

    pub(super) fn map_cli(&mut self, json: bool) -> Res<Sample> {
        let held = self.held.as_ref().ok_or("no holder process")?;
        let t = Instant::now();
        held.map(json)?;
        Ok(Sample::timed(t.elapsed()))
    }
}

/// The parts of the probe's JSON document that grow with the buffer.
#[derive(serde::Serialize)]
struct ProbeDoc<'a> {
    segments: Vec<unimem::core::report::JsonSegment>,
    integrity: &'a unimem::core::pattern::Verification,
    checksums: &'a [unimem::probe::ChecksumCheck],
}
