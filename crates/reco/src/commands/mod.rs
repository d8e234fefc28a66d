pub mod gold;
pub mod serve;
pub mod silver;
pub mod topics;
pub mod up;
