import './base.css';
import './failures.css';
