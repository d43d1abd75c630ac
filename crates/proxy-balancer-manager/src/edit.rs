//! Edits: Apache query API (work in progress).
