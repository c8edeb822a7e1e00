//! The chat template SmolLM2-Instruct was trained on (ChatML): each turn is
//! `<|im_start|>{role}\n{content}<|im_end|>\n`, and the model writes after an opened
//! assistant turn. Tasks build their prompts from these, never from the markers themselves.

/// What ends a turn: the model's end of answer (an end token of the generator).
pub const END_OF_TURN: &str = "<|im_end|>";

/// One whole turn.
pub fn turn(role: &str, content: &str) -> String {
    format!("<|im_start|>{role}\n{content}{END_OF_TURN}\n")
}

/// The opening of a turn whose content follows (a primed prefix ends inside the user turn).
pub fn open_turn(role: &str) -> String {
    format!("<|im_start|>{role}\n")
}

/// Where the model's answer begins.
pub fn assistant_reply() -> String {
    open_turn("assistant")
}
