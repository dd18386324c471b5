//! The namespaces the generator writes, with the forward links it writes on each (admin-query
//! shape: a link is an array of `{id}` objects).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Ns {
    ContextContexts,
    ContextEvents,
    StoryExecutions,
    StorySteps,
    StoryParts,
    WhatsappMessages,
    ConversationMessages,
    AwardAwards,
    TenderTenders,
    ThreadThreads,
    ThreadContexts,
    Thread,
    StoryContexts,
    StoryEvents,
    Organizations,
}

impl Ns {
    /// Output order: the five legacy namespaces first, then esolbay and leftovers.
    pub const ALL: [Ns; 15] = [
        Ns::ContextContexts,
        Ns::ContextEvents,
        Ns::StoryExecutions,
        Ns::StorySteps,
        Ns::StoryParts,
        Ns::WhatsappMessages,
        Ns::ConversationMessages,
        Ns::AwardAwards,
        Ns::TenderTenders,
        Ns::ThreadThreads,
        Ns::ThreadContexts,
        Ns::Thread,
        Ns::StoryContexts,
        Ns::StoryEvents,
        Ns::Organizations,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Ns::ContextContexts => "context_contexts",
            Ns::ContextEvents => "context_events",
            Ns::StoryExecutions => "story_executions",
            Ns::StorySteps => "story_steps",
            Ns::StoryParts => "story_parts",
            Ns::WhatsappMessages => "whatsapp_messages",
            Ns::ConversationMessages => "conversation_messages",
            Ns::AwardAwards => "award_awards",
            Ns::TenderTenders => "tender_tenders",
            Ns::ThreadThreads => "thread_threads",
            Ns::ThreadContexts => "thread_contexts",
            Ns::Thread => "thread",
            Ns::StoryContexts => "story_contexts",
            Ns::StoryEvents => "story_events",
            Ns::Organizations => "organizations",
        }
    }

    pub fn from_name(name: &str) -> Option<Ns> {
        Ns::ALL.into_iter().find(|ns| ns.name() == name)
    }

    /// One of the five legacy source namespaces.
    pub const fn is_legacy(self) -> bool {
        matches!(
            self,
            Ns::ContextContexts
                | Ns::ContextEvents
                | Ns::StoryExecutions
                | Ns::StorySteps
                | Ns::StoryParts
        )
    }

    /// Forward link labels every row of the namespace carries (`[]` when unlinked), as the
    /// old scripts' source query asks for them. Other labels (`whatsappMessages`,
    /// `organization`, `tender`, `thread`) appear only on rows that have them.
    pub const fn core_links(self) -> &'static [&'static str] {
        match self {
            Ns::ContextContexts => &["currentExecution"],
            Ns::ContextEvents => &["context", "execution"],
            Ns::StoryExecutions => &["context", "trigger", "reaction"],
            Ns::StorySteps => &["execution"],
            Ns::StoryParts => &["step"],
            _ => &[],
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}
