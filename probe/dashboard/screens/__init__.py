"""The dashboard's pages, one per view; each only lays out widgets and figures (``st.navigation`` runs them)."""
