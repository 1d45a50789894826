"""Plotly figure builders, one module per concern. No Streamlit here."""
