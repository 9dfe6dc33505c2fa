# Tournament, Entry, Trade and EquitySnapshot arrive with the tournaments issue.
