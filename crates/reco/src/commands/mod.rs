pub mod gold;
pub mod serve;
pub mod silver;
pub mod status;
pub mod topics;
pub mod traffic;
pub mod up;
