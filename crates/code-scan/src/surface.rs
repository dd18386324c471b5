//! Surface classification of repository-relative paths (anchor §3.4), case-insensitive.
//!
//! Paths are relative to the repository root with `/` separators, so a Next.js app keeps its
//! `src/app/...` prefix whatever the scan root is.

fn has_extension(path: &str, extensions: &[&str]) -> Option<usize> {
    extensions.iter().find_map(|ext| {
        let suffix_len = ext.len() + 1;
        (path.len() > suffix_len
            && path.ends_with(ext)
            && path.as_bytes()[path.len() - suffix_len] == b'.')
            .then_some(suffix_len)
    })
}

const ROUTE_EXTENSIONS: [&str; 6] = ["ts", "tsx", "js", "jsx", "mjs", "cjs"];
const TS_EXTENSIONS: [&str; 2] = ["ts", "tsx"];

/// `src/app/<one or more segments>/route.(ts|tsx|js|jsx|mjs|cjs)`.
pub fn is_endpoint_route(rel: &str) -> bool {
    let path = rel.to_ascii_lowercase();
    let Some(rest) = path.strip_prefix("src/app/") else {
        return false;
    };
    let Some((dir, file)) = rest.rsplit_once('/') else {
        return false;
    };
    !dir.is_empty()
        && file
            .strip_prefix("route.")
            .is_some_and(|ext| ROUTE_EXTENSIONS.contains(&ext))
}

/// Agent surfaces: the agent and story-context components, domain agents, platform agent
/// pages and agent API routes.
pub fn is_agent_surface(rel: &str) -> bool {
    let path = rel.to_ascii_lowercase();
    let Some(ext_len) = has_extension(&path, &TS_EXTENSIONS) else {
        return false;
    };
    if path.starts_with("src/components/ekairos/agent/")
        || path.starts_with("src/components/ekairos/story/context/")
    {
        return true;
    }
    if let Some(rest) = path.strip_prefix("src/lib/domain/") {
        // `.+agent.+` before the extension.
        let stem = &rest[..rest.len() - ext_len];
        if stem
            .match_indices("agent")
            .any(|(at, _)| at >= 1 && at + "agent".len() < stem.len())
        {
            return true;
        }
    }
    if path.starts_with("src/app/platform/") && path.ends_with("agent.tsx") {
        return true;
    }
    if let Some(rest) = path.strip_prefix("src/app/api/") {
        let dir = rest
            .strip_suffix("/route.ts")
            .or_else(|| rest.strip_suffix("/route.tsx"));
        if dir.is_some_and(|dir| dir.contains("agent")) {
            return true;
        }
    }
    false
}

/// Target agent endpoints: the endpoint routes an agent is served from, which must show
/// thread evidence. Unlike the anchor, a bare `src/app/api/agent/route.ts` is included.
pub fn is_target_agent_endpoint(rel: &str) -> bool {
    if !is_endpoint_route(rel) {
        return false;
    }
    let path = rel.to_ascii_lowercase();
    if path.ends_with("/stream/route.ts")
        || path.ends_with("/stream/route.tsx")
        || path.starts_with("src/app/api/internal_new/testing/")
    {
        return false;
    }
    if let Some(rest) = path.strip_prefix("src/app/api/") {
        for route in ["agent/route.ts", "agent/route.tsx"] {
            if rest == route
                || rest
                    .strip_suffix(route)
                    .is_some_and(|prefix| prefix.ends_with('/'))
            {
                return true;
            }
        }
    }
    path == "src/app/domain/[storyname]/route.ts"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_routes() {
        assert!(is_endpoint_route("src/app/api/x/route.ts"));
        assert!(is_endpoint_route("src/app/a/b/route.MJS"));
        assert!(!is_endpoint_route("src/app/route.ts"));
        assert!(!is_endpoint_route("src/app/api/x/route.mts"));
        assert!(!is_endpoint_route("app/api/x/route.ts"));
        assert!(!is_endpoint_route("src/app/api/x/router.ts"));
    }

    #[test]
    fn agent_surfaces() {
        assert!(is_agent_surface("src/components/ekairos/agent/Chat.tsx"));
        assert!(is_agent_surface(
            "src/components/ekairos/story/context/x/y.ts"
        ));
        assert!(is_agent_surface("src/lib/domain/sales/agents.ts"));
        assert!(is_agent_surface("src/lib/domain/sales/agent/tools.ts"));
        assert!(!is_agent_surface("src/lib/domain/agent.ts"));
        assert!(is_agent_surface("src/app/platform/x/SalesAgent.tsx"));
        assert!(is_agent_surface("src/app/api/agent/route.ts"));
        assert!(is_agent_surface("src/app/api/sales/agent/x/route.tsx"));
        assert!(!is_agent_surface("src/app/api/sales/route.ts"));
        assert!(!is_agent_surface("src/components/ekairos/agent/x.js"));
    }

    #[test]
    fn target_agent_endpoints() {
        assert!(is_target_agent_endpoint("src/app/api/sales/agent/route.ts"));
        assert!(is_target_agent_endpoint("src/app/api/agent/route.ts"));
        assert!(is_target_agent_endpoint(
            "src/app/domain/[storyName]/route.ts"
        ));
        assert!(!is_target_agent_endpoint(
            "src/app/api/sales/agent/stream/route.ts"
        ));
        assert!(!is_target_agent_endpoint(
            "src/app/api/internal_new/testing/agent/route.ts"
        ));
        assert!(!is_target_agent_endpoint("src/app/api/salesagent/route.ts"));
        assert!(!is_target_agent_endpoint(
            "src/app/api/sales/agent/route.js"
        ));
    }
}
