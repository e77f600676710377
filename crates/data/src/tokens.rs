//! Token streams: in memory, or memory-mapped from a token cache file, behind one cheap-to-clone
//! view type so a corpus larger than RAM trains the same way as a small one.

use std::ops::Range;
use std::sync::Arc;

use memmap2::Mmap;

/// Where token ids live.
#[derive(Debug)]
enum Storage {
    Memory(Vec<u32>),
    /// Little-endian ids of `width` bytes starting `offset` bytes into the map.
    Mapped {
        map: Mmap,
        offset: usize,
        width: usize,
    },
}

/// A view of a token stream: `len` ids from `start`.
#[derive(Debug, Clone)]
pub struct Tokens {
    storage: Arc<Storage>,
    start: usize,
    len: usize,
}

impl From<Vec<u32>> for Tokens {
    fn from(ids: Vec<u32>) -> Self {
        let len = ids.len();
        Self {
            storage: Arc::new(Storage::Memory(ids)),
            start: 0,
            len,
        }
    }
}

impl Tokens {
    /// `len` ids of `width` (2 or 4) bytes each, `offset` bytes into `map`.
    pub(crate) fn mapped(map: Mmap, offset: usize, width: usize, len: usize) -> Self {
        assert!(width == 2 || width == 4);
        assert!(offset + width * len <= map.len());
        Self {
            storage: Arc::new(Storage::Mapped { map, offset, width }),
            start: 0,
            len,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The id at position `i` of this view.
    pub fn get(&self, i: usize) -> u32 {
        assert!(i < self.len, "token {i} of {}", self.len);
        let i = self.start + i;
        match &*self.storage {
            Storage::Memory(ids) => ids[i],
            Storage::Mapped { map, offset, width } => {
                let at = offset + i * width;
                let b = &map[at..at + width];
                if *width == 2 {
                    u32::from(u16::from_le_bytes([b[0], b[1]]))
                } else {
                    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
                }
            }
        }
    }

    /// A sub-view (no copy).
    pub fn slice(&self, range: Range<usize>) -> Tokens {
        assert!(range.start <= range.end && range.end <= self.len);
        Tokens {
            storage: self.storage.clone(),
            start: self.start + range.start,
            len: range.end - range.start,
        }
    }

    /// Copies `range` out as ids.
    pub fn to_vec(&self, range: Range<usize>) -> Vec<u32> {
        range.map(|i| self.get(i)).collect()
    }

    pub fn all(&self) -> Vec<u32> {
        self.to_vec(0..self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_slice_without_copying_and_read_mapped_widths() {
        let t = Tokens::from((0..10).collect::<Vec<u32>>());
        let s = t.slice(3..8);
        assert_eq!((s.len(), s.get(0), s.get(4)), (5, 3, 7));
        assert_eq!(s.slice(1..3).all(), vec![4, 5]);

        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path();
        let mut bytes = vec![0xAAu8; 3]; // a 3-byte header
        for id in [1u16, 500, 65535] {
            bytes.extend(id.to_le_bytes());
        }
        std::fs::write(path, &bytes).unwrap();
        let map = unsafe { Mmap::map(&std::fs::File::open(path).unwrap()).unwrap() };
        let mapped = Tokens::mapped(map, 3, 2, 3);
        assert_eq!(mapped.all(), vec![1, 500, 65535]);
    }
}
