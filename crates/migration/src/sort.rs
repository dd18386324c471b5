//! An external sort of (key, line) records: memory is bounded by a budget; beyond it, sorted
//! runs are spilled to temporary files and merged. Records come out ordered by key, then by
//! line bytes, so the order never depends on the input order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

pub struct Sorter {
    budget: usize,
    dir: PathBuf,
    name: String,
    arena: Vec<u8>,
    /// (start, key length, line length) into `arena`.
    index: Vec<(usize, u32, u32)>,
    runs: Vec<PathBuf>,
    records: u64,
}

impl Sorter {
    /// `dir` holds the spilled runs (removed when merged or dropped).
    pub fn new(dir: &Path, name: &str, budget: usize) -> Self {
        Sorter {
            budget: budget.max(1024),
            dir: dir.to_path_buf(),
            name: name.to_string(),
            arena: Vec::new(),
            index: Vec::new(),
            runs: Vec::new(),
            records: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    pub fn push(&mut self, key: &[u8], line: &[u8]) -> io::Result<()> {
        let size = key.len() + line.len();
        if !self.arena.is_empty() && self.arena.len() + size > self.budget {
            self.spill()?;
        }
        if self.arena.capacity() == 0 {
            self.arena
                .reserve(self.budget.min(size.max(1 << 20) * 4).max(size));
        }
        let start = self.arena.len();
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(line);
        self.index
            .push((start, key.len() as u32, line.len() as u32));
        self.records += 1;
        Ok(())
    }

    fn sort_index(&mut self) {
        let arena = &self.arena;
        let parts = |&(start, k, l): &(usize, u32, u32)| {
            let key_end = start + k as usize;
            (
                &arena[start..key_end],
                &arena[key_end..key_end + l as usize],
            )
        };
        self.index.sort_unstable_by(|a, b| parts(a).cmp(&parts(b)));
    }

    fn spill(&mut self) -> io::Result<()> {
        self.sort_index();
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!(
            "{}.{}.{}.run",
            self.name,
            std::process::id(),
            self.runs.len()
        ));
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        self.runs.push(path);
        for &(start, k, l) in &self.index {
            out.write_all(&k.to_le_bytes())?;
            out.write_all(&l.to_le_bytes())?;
            out.write_all(&self.arena[start..start + k as usize + l as usize])?;
        }
        out.flush()?;
        self.arena.clear();
        self.index.clear();
        Ok(())
    }

    /// Calls `sink(key, line)` for every record in order, then frees everything.
    pub fn drain(mut self, mut sink: impl FnMut(&[u8], &[u8]) -> io::Result<()>) -> io::Result<()> {
        if self.runs.is_empty() {
            self.sort_index();
            for &(start, k, l) in &self.index {
                let key_end = start + k as usize;
                sink(
                    &self.arena[start..key_end],
                    &self.arena[key_end..key_end + l as usize],
                )?;
            }
            return Ok(());
        }
        if !self.index.is_empty() {
            self.spill()?;
        }
        self.arena = Vec::new();
        self.index = Vec::new();
        let mut readers = Vec::with_capacity(self.runs.len());
        let mut heap = BinaryHeap::new();
        for (run, path) in self.runs.iter().enumerate() {
            let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
            if let Some(record) = read_record(&mut reader)? {
                heap.push(Head { record, run });
            }
            readers.push(reader);
        }
        while let Some(Head { record, run }) = heap.pop() {
            sink(&record.0, &record.1)?;
            if let Some(next) = read_record(&mut readers[run])? {
                heap.push(Head { record: next, run });
            }
        }
        Ok(())
    }
}

impl Drop for Sorter {
    fn drop(&mut self) {
        for run in &self.runs {
            let _ = std::fs::remove_file(run);
        }
    }
}

fn read_record(reader: &mut impl Read) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut lens = [0u8; 8];
    match reader.read_exact(&mut lens) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let k = u32::from_le_bytes(lens[..4].try_into().unwrap()) as usize;
    let l = u32::from_le_bytes(lens[4..].try_into().unwrap()) as usize;
    let mut key = vec![0; k];
    reader.read_exact(&mut key)?;
    let mut line = vec![0; l];
    reader.read_exact(&mut line)?;
    Ok(Some((key, line)))
}

struct Head {
    record: (Vec<u8>, Vec<u8>),
    run: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap.
        (&other.record.0, &other.record.1, other.run).cmp(&(
            &self.record.0,
            &self.record.1,
            self.run,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spills_and_merges_in_order() {
        let dir = std::env::temp_dir().join(format!("migration-sort-{}", std::process::id()));
        let mut sorter = Sorter::new(&dir, "t", 1024);
        let mut expected = Vec::new();
        for i in 0..2000u32 {
            let key = (i * 7919 % 2000).to_be_bytes();
            let line = format!("line {i}").into_bytes();
            expected.push((key.to_vec(), line.clone()));
            sorter.push(&key, &line).unwrap();
        }
        expected.sort();
        let mut got = Vec::new();
        sorter
            .drain(|k, l| {
                got.push((k.to_vec(), l.to_vec()));
                Ok(())
            })
            .unwrap();
        assert_eq!(got, expected);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
