//! The special tokens tinygpt's vocabularies know (character and BPE alike): the end of a
//! document, and the chat template's role tokens.

/// The special token that separates documents in a byte-level BPE vocabulary.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// Who speaks in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::System, Role::User, Role::Assistant];

    /// The name of the Hugging Face convention (`{"role": "user", ...}`).
    pub fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// `<|user_start|>` and the like: where this role's turn starts.
    pub fn start(self) -> &'static str {
        CHAT_TOKENS[2 * self as usize]
    }

    /// `<|user_end|>` and the like: where this role's turn ends.
    pub fn end(self) -> &'static str {
        CHAT_TOKENS[2 * self as usize + 1]
    }
}

/// The chat template's role tokens (nanochat's names), in the order a vocabulary reserves
/// them: right after `<|endoftext|>`.
pub const CHAT_TOKENS: [&str; 6] = [
    "<|system_start|>",
    "<|system_end|>",
    "<|user_start|>",
    "<|user_end|>",
    "<|assistant_start|>",
    "<|assistant_end|>",
];

/// The ids of a vocabulary's role tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatTokens {
    /// In [`CHAT_TOKENS`] order.
    pub ids: [u32; 6],
}

impl ChatTokens {
    pub fn start(&self, role: Role) -> u32 {
        self.ids[2 * role as usize]
    }

    pub fn end(&self, role: Role) -> u32 {
        self.ids[2 * role as usize + 1]
    }

    /// The role whose turn `id` starts, if it starts one.
    pub fn starts(&self, id: u32) -> Option<Role> {
        Role::ALL.into_iter().find(|&r| self.start(r) == id)
    }
}
