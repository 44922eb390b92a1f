//! Partner tools: commands a partner runs on their own machine to check what
//! ramphook sends them (`verify`) and to stand in for their servers (`listen`).

pub mod access;
pub mod args;
pub mod listen;
pub mod report;
pub mod verify;
