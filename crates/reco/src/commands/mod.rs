pub mod serve;
pub mod topics;
pub mod up;
