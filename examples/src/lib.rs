//! Examples package: see the `[[example]]` targets.
