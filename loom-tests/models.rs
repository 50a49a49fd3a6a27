#![cfg(thread_safe_state_loom)]
