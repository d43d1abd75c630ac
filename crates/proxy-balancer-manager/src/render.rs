//! Rendering: HTML, XML, JSON, metrics (work in progress).
